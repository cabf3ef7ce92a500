//! The source tree's dependency rule: between any two modules that share a parent, uses
//! point one way only, and no module reaches up into the module that contains it.
//!
//! Read from the `crate::` and `super::` paths in `src/`, ignoring comments and
//! `#[cfg(test)]` modules (unit tests may use any part of the crate, e.g. `tools::pki` to
//! make certificates). `lib.rs`'s "# Layout" note says which way each part points.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root, e.g. `["inbound", "client_cert", "trust"]`.
type ModPath = Vec<String>;

#[test]
fn no_two_modules_depend_on_each_other_and_none_reaches_up_into_its_parent() {
    let modules = read_modules(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path());
    assert!(modules.len() > 10, "found only {} modules", modules.len());
    let problems = problems(&modules);
    assert!(
        problems.is_empty(),
        "module dependency rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_reports_a_cycle_between_siblings_and_a_use_of_the_parent() {
    let mut modules = BTreeMap::new();
    modules.insert(path("a"), uses(&["a::b::x"]));
    modules.insert(path("a::b"), uses(&["a::c::y"]));
    modules.insert(path("a::c"), uses(&["a::b::z"]));
    modules.insert(path("a::d"), uses(&["a::Item"]));
    modules.insert(path("e"), uses(&["a::b::x"]));
    let found = problems(&modules);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("a::b") && found[0].contains("a::c"),
        "{found:?}"
    );
    assert!(found[1].contains("a::d uses its parent a"), "{found:?}");
}

#[test]
fn the_checker_reads_grouped_relative_and_qualified_paths_but_not_comments_or_tests() {
    let src = "//! see crate::gone\nuse crate::{host::app, settings::X};\nuse super::sibling::Y;\n\
               const M: &str = \"see crate::not_a_use\"; const Q: char = '\"';\n\
               fn f() { crate::clock::system_clock(); } // crate::ignored\n\
               #[cfg(test)]\nmod tests { use crate::tools::pki; }\n";
    let found = references(src, &path("inbound::gate"));
    let found: BTreeSet<String> = found.iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = [
        "host::app",
        "settings::X",
        "inbound::sibling::Y",
        "clock::system_clock",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(found, expected);
}

// === reading the tree ===

fn path(s: &str) -> ModPath {
    s.split("::").map(str::to_owned).collect()
}

fn uses(paths: &[&str]) -> BTreeSet<ModPath> {
    paths.iter().map(|p| path(p)).collect()
}

/// Every module file under `src` with the paths it uses.
fn read_modules(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut files = Vec::new();
    collect(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let mut parts: ModPath = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        match parts.last().map(String::as_str) {
            Some("main") if parts.len() == 1 => continue,
            Some("lib") if parts.len() == 1 => parts.clear(),
            Some("mod") => {
                parts.pop();
            }
            _ => {}
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let found = references(&text, &parts);
        modules.insert(parts, found);
    }
    modules
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src dir") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::`/`super::` paths in `text` (a file of module `me`), as absolute paths.
fn references(text: &str, me: &ModPath) -> BTreeSet<ModPath> {
    let code = without_tests(&without_comments(text));
    let mut found = BTreeSet::new();
    for (root, base) in [
        ("crate::", Vec::new()),
        ("super::", me[..me.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(root) {
            let preceded_by_ident = rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[i + root.len()..];
            if preceded_by_ident {
                continue;
            }
            for tail in expand(rest) {
                let mut p = base.clone();
                p.extend(tail);
                if !p.is_empty() {
                    found.insert(p);
                }
            }
        }
    }
    found
}

/// The paths written at the start of `s`: `a::b::C` or a group `{a::b, c::{d, e}}`.
fn expand(s: &str) -> Vec<ModPath> {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        return split_top_level(&group[..end])
            .into_iter()
            .flat_map(expand)
            .collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            break;
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') => {
                return expand(r)
                    .into_iter()
                    .map(|tail| path.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(r) => rest = r,
            None => break,
        }
    }
    vec![path]
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items.into_iter().filter(|i| !i.trim().is_empty()).collect()
}

/// `text` without `//` comments (doc comments included) and without the contents of
/// string literals (a message that names a path is not a use of it).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut in_string = false;
        while i < chars.len() {
            let c = chars[i];
            if in_string {
                match c {
                    '\\' => i += 1,
                    '"' => {
                        in_string = false;
                        out.push('"');
                    }
                    _ => {}
                }
            } else if c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            } else if c == '"' {
                in_string = true;
                out.push('"');
            } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
                // A char literal such as '"'.
                i += 2;
            } else {
                out.push(c);
            }
            i += 1;
        }
        out.push('\n');
    }
    out
}

/// `text` without the items that follow a top-level `#[cfg(test)]`, up to their closing brace.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut depth = 0i32;
        let mut opened = false;
        for l in lines.by_ref() {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out
}

// === the rule ===

/// The module a used path lands in: the longest prefix that is a module.
fn owner<'a>(
    used: &ModPath,
    modules: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
) -> Option<&'a ModPath> {
    (0..=used.len())
        .rev()
        .find_map(|n| modules.get_key_value(&used[..n]).map(|(k, _)| k))
}

fn problems(modules: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<String> {
    let mut out = Vec::new();
    // Edges between the children of each parent, lifted from every module below them.
    let mut edges: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, used) in modules {
        for u in used {
            let Some(to) = owner(u, modules) else {
                continue;
            };
            if from.starts_with(to) && from != to {
                out.push(format!(
                    "{} uses its parent {}",
                    from.join("::"),
                    to.join("::")
                ));
                continue;
            }
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges
                    .entry(from[..common].to_vec())
                    .or_default()
                    .insert((from[common].clone(), to[common].clone()));
            }
        }
    }
    let mut cycles = Vec::new();
    for (parent, pairs) in &edges {
        for (a, b) in pairs {
            if a < b && reaches(pairs, b, a) {
                let name = |m: &str| {
                    let mut p = parent.clone();
                    p.push(m.to_owned());
                    p.join("::")
                };
                cycles.push(format!("cycle between {} and {}", name(a), name(b)));
            }
        }
    }
    out.sort();
    out.dedup();
    cycles.extend(out);
    cycles
}

fn reaches(pairs: &BTreeSet<(String, String)>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            stack.extend(
                pairs
                    .iter()
                    .filter(|(a, _)| *a == m)
                    .map(|(_, b)| b.clone()),
            );
        }
    }
    false
}
