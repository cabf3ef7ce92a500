//! Checks on the Functions app layout at the repository root: `host.json`, one folder with a
//! `function.json` per function, `local.settings.json.example`, and the README's settings table.
//!
//! The JSON schemas are SchemaStore's (Apache-2.0, see `tests/schemas/NOTICE`). The tests always
//! use the vendored copies in `tests/schemas/`, so they run without the shared reference folder
//! and without network access; `vendored_schemas_match_the_shared_reference_copies` keeps the
//! vendored copies identical to `../shared/reference/schemas` whenever that folder exists.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const FUNCTIONS: [&str; 3] = ["health", "cert-info", "outbound-mtls"];
const SCHEMA_FILES: [&str; 4] = [
    "host.json",
    "function.json",
    "local.settings.json",
    "NOTICE",
];

fn app_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vendored_schemas() -> PathBuf {
    app_root().join("tests").join("schemas")
}

fn shared_schemas() -> PathBuf {
    app_root()
        .join("..")
        .join("shared")
        .join("reference")
        .join("schemas")
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_text(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn schema(name: &str) -> Value {
    read_json(&vendored_schemas().join(name))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate:\n{}",
        errors.join("\n")
    );
}

fn function_json(function: &str) -> Value {
    read_json(&app_root().join(function).join("function.json"))
}

fn bindings(function: &str) -> Vec<Value> {
    function_json(function)["bindings"]
        .as_array()
        .unwrap_or_else(|| panic!("{function}/function.json has no bindings array"))
        .clone()
}

fn local_settings_values() -> serde_json::Map<String, Value> {
    read_json(&app_root().join("local.settings.json.example"))["Values"]
        .as_object()
        .expect("local.settings.json.example has a Values object")
        .clone()
}

#[test]
fn vendored_schemas_match_the_shared_reference_copies() {
    let shared = shared_schemas();
    for name in SCHEMA_FILES {
        let vendored = vendored_schemas().join(name);
        assert!(vendored.is_file(), "missing {}", vendored.display());
        if shared.is_dir() {
            let shared_file = shared.join(name);
            let (a, b) = (fs::read(&vendored), fs::read(&shared_file));
            let (a, b) = (
                a.unwrap_or_else(|e| panic!("{}: {e}", vendored.display())),
                b.unwrap_or_else(|e| panic!("{}: {e}", shared_file.display())),
            );
            assert!(
                a == b,
                "{} differs from {}; copy the shared file over the vendored one",
                vendored.display(),
                shared_file.display()
            );
        }
    }
}

#[test]
fn vendored_schema_notice_keeps_the_apache_attribution() {
    let notice = read_text(&vendored_schemas().join("NOTICE"));
    assert!(
        notice.contains("SchemaStore"),
        "NOTICE must name SchemaStore"
    );
    assert!(
        notice.contains("Apache License 2.0"),
        "NOTICE must keep the Apache-2.0 attribution"
    );
}

#[test]
fn host_json_validates_against_schemastore_schema() {
    let validator =
        jsonschema::draft7::new(&schema("host.json")).expect("host.json schema compiles");
    assert_valid(
        &validator,
        &read_json(&app_root().join("host.json")),
        "host.json",
    );
}

#[test]
fn host_json_points_at_the_handler_binary_in_forwarding_mode() {
    let host = read_json(&app_root().join("host.json"));
    assert_eq!(host["version"], "2.0");
    let handler = &host["customHandler"];
    assert_eq!(handler["description"]["defaultExecutablePath"], "handler");
    assert_eq!(handler["description"]["workingDirectory"], "");
    assert_eq!(handler["description"]["arguments"], json!([]));
    assert_eq!(handler["enableForwardingHttpRequest"], true);
    assert!(
        handler.get("enableProxyingHttpRequest").is_none(),
        "forwarding mode only; proxying mode needs a newer host"
    );
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
    assert_eq!(host["logging"]["logLevel"]["default"], "Information");
}

#[test]
fn handler_binary_name_matches_the_cargo_bin_target() {
    let manifest = read_text(&app_root().join("Cargo.toml"));
    assert!(
        manifest.contains("name = \"handler\""),
        "Cargo.toml must build a binary named `handler` (host.json defaultExecutablePath)"
    );
}

#[test]
fn function_folders_are_exactly_health_cert_info_and_outbound_mtls() {
    let found: BTreeSet<String> = fs::read_dir(app_root())
        .expect("read app root")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_dir() && path.join("function.json").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, expected);
}

#[test]
fn each_function_has_one_anonymous_get_http_trigger_and_one_http_output() {
    for function in FUNCTIONS {
        let doc = function_json(function);
        let keys: Vec<&String> = doc.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["bindings"], "{function}: only a bindings array");
        assert_eq!(
            bindings(function),
            vec![
                json!({
                    "type": "httpTrigger",
                    "direction": "in",
                    "name": "req",
                    "authLevel": "anonymous",
                    "methods": ["get"],
                    "route": function
                }),
                json!({"type": "http", "direction": "out", "name": "res"}),
            ],
            "{function}/function.json"
        );
    }
}

/// The whole-file SchemaStore function.json schema rejects every http binding: its
/// `sqlBinding` definition matches any object, so the `oneOf` over binding kinds never has
/// exactly one match. Each binding is therefore checked against the two definitions that
/// describe it, `bindingBase` and `httpBinding`, with the schema's own definitions in scope.
fn http_binding_validator() -> jsonschema::Validator {
    let function_schema = schema("function.json");
    let binding_schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "allOf": [
            {"$ref": "#/definitions/bindingBase"},
            {"$ref": "#/definitions/httpBinding"}
        ],
        "definitions": function_schema["definitions"].clone()
    });
    jsonschema::draft4::new(&binding_schema).expect("binding schema compiles")
}

#[test]
fn each_binding_validates_against_binding_base_and_http_binding_definitions() {
    let validator = http_binding_validator();
    for function in FUNCTIONS {
        for (i, binding) in bindings(function).iter().enumerate() {
            assert_valid(
                &validator,
                binding,
                &format!("{function}/function.json bindings[{i}]"),
            );
        }
    }
}

#[test]
fn binding_schema_rejects_a_wrong_direction_or_unknown_auth_level() {
    let validator = http_binding_validator();
    let wrong_direction = json!({"type": "http", "direction": "in", "name": "res"});
    let bad_auth = json!({
        "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "nobody"
    });
    let no_name = json!({"type": "http", "direction": "out"});
    for bad in [wrong_direction, bad_auth, no_name] {
        assert!(!validator.is_valid(&bad), "should be rejected: {bad}");
    }
}

#[test]
fn whole_file_function_schema_still_rejects_http_bindings() {
    // If this starts failing, SchemaStore fixed the schema: validate whole files instead.
    let validator =
        jsonschema::draft4::new(&schema("function.json")).expect("function.json schema compiles");
    assert!(!validator.is_valid(&function_json("health")));
}

#[test]
fn local_settings_example_validates_against_schemastore_schema() {
    let validator = jsonschema::draft4::new(&schema("local.settings.json"))
        .expect("local.settings.json schema compiles");
    let example = read_json(&app_root().join("local.settings.json.example"));
    assert_valid(&validator, &example, "local.settings.json.example");
    assert_eq!(example["IsEncrypted"], false);
}

#[test]
fn local_settings_example_uses_the_custom_runtime_and_only_string_values() {
    let values = local_settings_values();
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    for (key, value) in &values {
        assert!(value.is_string(), "{key} must be a string, got {value}");
        assert!(
            !key.contains(':') && !key.contains("__"),
            "{key}: app setting names can't contain ':' or '__'"
        );
    }
}

/// Names in the first column of the table under README's "## Settings" heading
/// (rows like "| `NAME` | ...").
fn readme_settings() -> BTreeSet<String> {
    let readme = read_text(&app_root().join("README.md"));
    let settings = readme
        .split("\n## ")
        .find(|section| section.starts_with("Settings"))
        .expect("README.md has a \"## Settings\" section");
    settings
        .lines()
        .filter_map(|line| line.trim().strip_prefix('|'))
        .filter_map(|rest| rest.split('|').next())
        .map(|cell| cell.trim().trim_matches('`').to_string())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[test]
fn local_settings_example_documents_every_setting_in_the_readme() {
    let documented = readme_settings();
    let values = local_settings_values();
    let missing: Vec<&String> = values
        .keys()
        .filter(|key| key.as_str() != "FUNCTIONS_WORKER_RUNTIME")
        .filter(|key| !documented.contains(key.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md settings table lacks: {missing:?}"
    );
}

#[test]
fn readme_settings_table_lists_only_settings_in_the_example_or_set_by_the_host() {
    let values = local_settings_values();
    let host_set = [
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "FUNCTIONS_HTTPWORKER_PORT",
        "FUNCTIONS_APP_ROOT_PATH",
    ];
    let extra: Vec<String> = readme_settings()
        .into_iter()
        .filter(|name| !values.contains_key(name) && !host_set.contains(&name.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "README.md documents settings missing from local.settings.json.example: {extra:?}"
    );
}

#[test]
fn readme_starts_with_the_demo_and_test_commands() {
    let readme = read_text(&app_root().join("README.md"));
    let block = readme
        .split("```")
        .nth(1)
        .expect("README.md has a code block");
    let commands: Vec<&str> = block
        .lines()
        .skip(1) // the info string (e.g. "sh")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands, ["scripts/demo.sh", "scripts/test.sh"]);
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = read_text(&app_root().join(".ci").join("run"));
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test.sh"),
        ".ci/run must run scripts/test.sh"
    );
    for script in [
        app_root().join(".ci").join("run"),
        app_root().join("scripts").join("test.sh"),
    ] {
        assert!(script.is_file(), "missing {}", script.display());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&script)
                .expect("metadata")
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{} must be executable", script.display());
        }
    }
}

#[test]
fn schemas_reject_obviously_broken_documents() {
    // Guards against a validator that passes everything (e.g. unresolved references).
    let host = jsonschema::draft7::new(&schema("host.json")).expect("host.json schema compiles");
    let mut broken_host = read_json(&app_root().join("host.json"));
    broken_host["customHandler"]["enableForwardingHttpRequest"] = json!("yes");
    assert!(
        !host.is_valid(&broken_host),
        "host.json schema accepted {broken_host}"
    );

    let settings = jsonschema::draft4::new(&schema("local.settings.json"))
        .expect("local.settings.json schema compiles");
    let mut broken_settings = read_json(&app_root().join("local.settings.json.example"));
    broken_settings["Values"]["FUNCTIONS_WORKER_RUNTIME"] = json!("rust");
    assert!(
        !settings.is_valid(&broken_settings),
        "local.settings.json schema accepted FUNCTIONS_WORKER_RUNTIME=rust"
    );
}
