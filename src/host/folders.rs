//! The function folders at the app root against the registered functions.
//!
//! Owns: reading `*/function.json` under the app root and comparing each with the
//! declaration registered in code: a folder without a function answers 404 in Azure, a
//! function without a folder is unreachable, and a route or method list that differs means
//! the host and the handler disagree about what the function is. Start-up refuses all three;
//! `tests/functions.rs` runs the same check on the repository.
//! Must not: read anything but the folders' `function.json` files, or change them.

use crate::host::function::Registry;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One way the folders and the registered functions disagree. `Display` names the folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read the app root {}: {reason}", root.display())]
    UnreadableRoot { root: PathBuf, reason: String },
    #[error("folder {folder}/ has a function.json but no function is registered under that name (add one to the list in src/functions/mod.rs, or delete the folder)")]
    NoFunction { folder: String },
    #[error("folder {folder}/ is missing: the function {folder:?} is registered, so {folder}/function.json must exist at the app root {}", root.display())]
    NoFolder { folder: String, root: PathBuf },
    #[error("folder {folder}/: function.json cannot be used: {reason}")]
    BadFunctionJson { folder: String, reason: String },
    #[error("folder {folder}/: function.json says route {in_json:?}, the function declares {declared:?}")]
    RouteDiffers {
        folder: String,
        in_json: String,
        declared: String,
    },
    #[error("folder {folder}/: function.json allows methods [{in_json}], the function declares [{declared}]")]
    MethodsDiffer {
        folder: String,
        in_json: String,
        declared: String,
    },
}

/// The app root: `configured` (`FUNCTIONS_APP_ROOT_PATH`) or the working directory.
pub fn app_root(configured: Option<&Path>) -> Result<PathBuf, FolderError> {
    match configured {
        Some(path) => Ok(path.to_owned()),
        None => std::env::current_dir().map_err(|e| FolderError::UnreadableRoot {
            root: PathBuf::from("."),
            reason: e.to_string(),
        }),
    }
}

/// Every disagreement between the folders under `root` and `registry`, folders in name
/// order, then registered functions without a folder. Empty when they agree.
pub fn check(root: &Path, registry: &Registry) -> Vec<FolderError> {
    let folders = match function_folders(root) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for folder in &folders {
        let Some(function) = registry.iter().find(|f| f.name() == folder.as_str()) else {
            problems.push(FolderError::NoFunction {
                folder: folder.clone(),
            });
            continue;
        };
        let trigger = match read_trigger(&root.join(folder).join("function.json")) {
            Ok(t) => t,
            Err(reason) => {
                problems.push(FolderError::BadFunctionJson {
                    folder: folder.clone(),
                    reason,
                });
                continue;
            }
        };
        let route = trigger.route.unwrap_or_else(|| folder.clone());
        if route.trim_matches('/') != function.route_template().trim_matches('/') {
            problems.push(FolderError::RouteDiffers {
                folder: folder.clone(),
                in_json: route,
                declared: function.route_template().to_owned(),
            });
        }
        let declared: BTreeSet<String> = function
            .methods()
            .iter()
            .map(|m| m.function_json_name().to_owned())
            .collect();
        if trigger.methods != declared {
            problems.push(FolderError::MethodsDiffer {
                folder: folder.clone(),
                in_json: join(&trigger.methods),
                declared: join(&declared),
            });
        }
    }
    for function in registry.iter() {
        if !folders.iter().any(|f| f == function.name()) {
            problems.push(FolderError::NoFolder {
                folder: function.name().to_owned(),
                root: root.to_owned(),
            });
        }
    }
    problems
}

fn join(methods: &BTreeSet<String>) -> String {
    methods.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Names of the directories directly under `root` that hold a `function.json`, sorted.
fn function_folders(root: &Path) -> Result<Vec<String>, FolderError> {
    let unreadable = |e: std::io::Error| FolderError::UnreadableRoot {
        root: root.to_owned(),
        reason: e.to_string(),
    };
    let mut folders = Vec::new();
    for entry in fs::read_dir(root).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_dir() && path.join("function.json").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                folders.push(name.to_owned());
            }
        }
    }
    folders.sort();
    Ok(folders)
}

/// What the HTTP trigger binding says: its route (`None`: the folder name) and methods
/// (lowercase; an absent list means every method the host knows).
struct Trigger {
    route: Option<String>,
    methods: BTreeSet<String>,
}

/// Every method `function.json` may list; an absent `methods` allows them all.
const ALL_FUNCTION_JSON_METHODS: [&str; 8] = [
    "get", "post", "delete", "head", "patch", "put", "options", "trace",
];

fn read_trigger(path: &Path) -> Result<Trigger, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let bindings = doc
        .get("bindings")
        .and_then(Value::as_array)
        .ok_or("no bindings array")?;
    let is = |b: &Value, key: &str, want: &str| {
        b.get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(want))
    };
    let mut triggers = bindings
        .iter()
        .filter(|b| is(b, "type", "httpTrigger") && is(b, "direction", "in"));
    let trigger = triggers.next().ok_or("no httpTrigger binding")?;
    if triggers.next().is_some() {
        return Err("more than one httpTrigger binding".to_owned());
    }
    let route = match trigger.get("route") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err("route is not a string".to_owned()),
    };
    let methods = match trigger.get("methods") {
        None | Some(Value::Null) => ALL_FUNCTION_JSON_METHODS
            .iter()
            .map(|m| (*m).to_owned())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| "methods holds a value that is not a string".to_owned())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("methods is not an array".to_owned()),
    };
    Ok(Trigger { route, methods })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::answer::Answer;
    use crate::host::function::AppState;
    use crate::host::function::{Function, Method, Outcome, Request};
    use std::sync::Arc;

    async fn h(_: Request, _: Arc<AppState>) -> Outcome {
        Ok(Answer::ok(&()))
    }

    fn folder(root: &Path, name: &str, trigger: &str) {
        fs::create_dir_all(root.join(name)).unwrap();
        let doc = format!(
            r#"{{"bindings": [{trigger}, {{"type": "http", "direction": "out", "name": "res"}}]}}"#
        );
        fs::write(root.join(name).join("function.json"), doc).unwrap();
    }

    fn registry() -> Registry {
        Registry::new(vec![Function::new(
            "orders",
            &[Method::Post, Method::Get],
            h,
        )
        .route("orders/{id?}")])
        .unwrap()
    }

    const GOOD: &str = r#"{"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "methods": ["POST", "get"], "route": "orders/{id?}"}"#;

    #[test]
    fn matching_folders_pass_and_other_directories_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "orders", GOOD);
        fs::create_dir_all(dir.path().join("src")).unwrap();
        assert_eq!(check(dir.path(), &registry()), vec![]);
    }

    #[test]
    fn a_folder_without_a_function_and_a_function_without_a_folder_are_named() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "invoices", GOOD);
        let problems = check(dir.path(), &registry());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].to_string().starts_with("folder invoices/ has"));
        assert!(problems[1]
            .to_string()
            .starts_with("folder orders/ is missing"));
    }

    #[test]
    fn a_different_route_or_method_list_is_named_with_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        folder(
            dir.path(),
            "orders",
            r#"{"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["post"], "route": "order"}"#,
        );
        let problems: Vec<String> = check(dir.path(), &registry())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                r#"folder orders/: function.json says route "order", the function declares "orders/{id?}""#,
                "folder orders/: function.json allows methods [post], the function declares [get, post]",
            ]
        );
    }

    #[test]
    fn absent_methods_mean_every_method_and_so_differ() {
        let dir = tempfile::tempdir().unwrap();
        folder(
            dir.path(),
            "orders",
            r#"{"type": "httpTrigger", "direction": "in", "name": "req", "route": "orders/{id?}"}"#,
        );
        let problems = check(dir.path(), &registry());
        assert!(matches!(problems[..], [FolderError::MethodsDiffer { .. }]));
    }

    #[test]
    fn a_function_json_that_is_not_json_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("orders")).unwrap();
        fs::write(dir.path().join("orders/function.json"), "{").unwrap();
        let problems = check(dir.path(), &registry());
        assert!(matches!(
            problems[..],
            [FolderError::BadFunctionJson { .. }]
        ));
    }
}
