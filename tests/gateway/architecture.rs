//! The layers of `src/`, checked: every `crate::` path of the production code (in `use` lines
//! and written inline, macro bodies included; `#[cfg(test)]` items and comments left out) is an
//! edge from the module it is written in to the module it names. No edge may go from a lower
//! layer to a higher one, and no two modules may reach each other, against the layer table in
//! ARCHITECTURE.md. The edges that break this today are [`ALLOWED`]: the list may only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Edges that break the layers, each to be removed (then deleted here). Empty: keep it so.
const ALLOWED: &[(&str, &str)] = &[];

/// Edges the layers would allow but the design does not: storage (pools, units of work,
/// dialects) is opened from a plain target and knows nothing of the configuration or the outbox;
/// the device link and the MQTT client carry and verify, and hand what they verified to the
/// `uplink::Handler` the composition root gives them: they name no storage and no store of the
/// books (the device registry gives the link its credentials; commands leave through
/// `command::Outlet`).
const FORBIDDEN: &[(&str, &str)] = &[
    ("storage", "config"),
    ("storage", "events"),
    ("link", "storage"),
    ("link", "db"),
    ("link", "events"),
    ("link", "wallet"),
    ("link", "rental"),
    ("link", "order"),
    ("link", "unlock"),
    ("link", "audit"),
    ("link", "account"),
    ("mqtt", "storage"),
    ("mqtt", "db"),
    ("mqtt", "device"),
    ("mqtt", "command"),
    ("serial", "events"),
    ("serial", "wallet"),
    ("serial", "rental"),
    ("serial", "order"),
    ("serial", "unlock"),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The lines of ARCHITECTURE.md's fenced block after `<!-- {name}: read by ... -->`.
fn architecture_block(name: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let marker = format!("<!-- {name}: read by tests/gateway/architecture.rs -->");
    let block = text
        .split(marker.as_str())
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .unwrap_or_else(|| panic!("the {name} block in ARCHITECTURE.md"));
    block.lines().skip(1).map(str::to_owned).collect()
}

/// Every source file of the library: (its path under `src/`, its top-level module, its text);
/// the crate root (which declares the modules) and the binary (another crate) left out.
fn library_files() -> Vec<(String, String, String)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let name = file
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            if name == "lib.rs" || name == "main.rs" {
                return None;
            }
            let module = name.split('/').next()?.trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&file).expect("readable");
            Some((name, module, text))
        })
        .collect()
}

/// The layer of each module, from ARCHITECTURE.md's layer block.
fn layers() -> BTreeMap<String, u32> {
    let block = architecture_block("layers");
    let mut layers = BTreeMap::new();
    for line in &block {
        let line = line.split('(').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(layer)) = words.next().map(u32::from_str) else {
            continue;
        };
        for module in words.filter(|w| *w != "·") {
            assert!(
                layers.insert(module.to_owned(), layer).is_none(),
                "{module} is in two layers"
            );
        }
    }
    layers
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Whether `tree` is the `[...]` of `#[cfg(test)]`.
fn is_cfg_test(tree: &TokenTree) -> bool {
    matches!(tree, TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket
        && g.stream().to_string().replace(' ', "") == "cfg(test)")
}

/// The first identifier of each `,`-separated part of a `{...}` group.
fn group_heads(stream: TokenStream) -> Vec<String> {
    let mut heads = Vec::new();
    let mut expecting = true;
    for tree in stream {
        match tree {
            TokenTree::Ident(ident) if expecting => {
                heads.push(ident.to_string());
                expecting = false;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => expecting = true,
            _ => {}
        }
    }
    heads
}

/// Calls `visit` with every token of `stream` outside `#[cfg(test)]` items (as its level's
/// tokens and its index there); a group is entered after its own visit if that says so.
fn walk(stream: TokenStream, visit: &mut dyn FnMut(&[TokenTree], usize) -> bool) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        // `#[cfg(test)]`: skip the item it guards (to its `;` or its body).
        if matches!(&trees[i], TokenTree::Punct(p) if p.as_char() == '#')
            && trees.get(i + 1).is_some_and(is_cfg_test)
        {
            i += 2;
            while i < trees.len() {
                match &trees[i] {
                    TokenTree::Punct(p) if p.as_char() == ';' => break,
                    TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => break,
                    _ => i += 1,
                }
            }
            i += 1;
            continue;
        }
        let enter = visit(&trees, i);
        if let TokenTree::Group(g) = &trees[i]
            && enter
        {
            walk(g.stream(), visit);
        }
        i += 1;
    }
}

/// Every module named after `crate::` in `stream`, test items left out.
fn crate_paths(stream: TokenStream, found: &mut BTreeSet<String>) {
    walk(stream, &mut |trees, i| {
        let TokenTree::Ident(ident) = &trees[i] else {
            return true;
        };
        let after_dollar =
            i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
        let path = matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':')
            && matches!(trees.get(i + 2), Some(TokenTree::Punct(p)) if p.as_char() == ':');
        if ident != "crate" || !path || after_dollar {
            return true;
        }
        match trees.get(i + 3) {
            Some(TokenTree::Ident(module)) => {
                found.insert(module.to_string());
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                found.extend(group_heads(g.stream()));
            }
            _ => {}
        }
        true
    });
}

/// Every edge between the library's modules: (from, to) → the files that write it.
fn edges(modules: &BTreeMap<String, u32>) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (name, module, text) in library_files() {
        assert!(
            modules.contains_key(&module),
            "src/{name}: module `{module}` is in no layer of ARCHITECTURE.md"
        );
        let stream = TokenStream::from_str(&text)
            .unwrap_or_else(|e| panic!("src/{name} does not tokenize: {e:?}"));
        let mut found = BTreeSet::new();
        crate_paths(stream, &mut found);
        for target in found {
            // `crate::VERSION` and the like are the crate root's own items.
            if target != module && modules.contains_key(&target) {
                edges
                    .entry((module.clone(), target))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    edges
}

/// The modules on a cycle of `edges`, each cycle as a sorted list (Tarjan's algorithm would do;
/// the graph is small, so reachability from every node is enough).
fn cycles(edges: &BTreeSet<(String, String)>) -> BTreeSet<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &to in next.get(node).into_iter().flatten() {
                if seen.insert(to) {
                    stack.push(to);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> =
        next.keys().map(|&node| (node, reach(node))).collect();
    let mut cycles = BTreeSet::new();
    for (&node, from_node) in &reached {
        if !from_node.contains(node) {
            continue;
        }
        let mut component: Vec<String> = from_node
            .iter()
            .filter(|other| reached.get(**other).is_some_and(|r| r.contains(node)))
            .map(|s| (*s).to_owned())
            .collect();
        component.sort();
        cycles.insert(component);
    }
    cycles
}

#[test]
fn modules_import_only_their_own_layer_and_below_without_cycles() {
    let layers = layers();
    assert!(
        layers.len() >= 20,
        "the layer block lists {} modules",
        layers.len()
    );
    let edges = edges(&layers);
    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let mut problems = Vec::new();
    for ((from, to), files) in &edges {
        if layers[to] > layers[from] && !allowed.contains(&(from.clone(), to.clone())) {
            problems.push(format!(
                "{from} (layer {}) imports {to} (layer {}) in {files:?}",
                layers[from], layers[to]
            ));
        }
    }
    for (from, to) in FORBIDDEN {
        if let Some(files) = edges.get(&((*from).to_owned(), (*to).to_owned())) {
            problems.push(format!("{from} must not import {to}: {files:?}"));
        }
    }
    for edge in &allowed {
        if !edges.contains_key(edge) {
            problems.push(format!(
                "{} -> {} is gone: delete it from ALLOWED",
                edge.0, edge.1
            ));
        }
    }
    let kept: BTreeSet<(String, String)> = edges
        .keys()
        .filter(|edge| !allowed.contains(*edge))
        .cloned()
        .collect();
    for cycle in cycles(&kept) {
        let inside: Vec<String> = kept
            .iter()
            .filter(|(a, b)| cycle.contains(a) && cycle.contains(b))
            .map(|(a, b)| format!("{a} -> {b} {:?}", edges[&(a.clone(), b.clone())]))
            .collect();
        problems.push(format!("a cycle through {cycle:?}: {inside:#?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_paths_in_groups_inline_and_in_macros_but_not_in_tests_or_comments() {
    let source = r#"
        //! crate::doc_comment
        use crate::{alpha::A, beta::{B, C}};
        use std::fmt;
        fn f() { let _ = crate::gamma::g(); metrics!(crate::delta::D); }
        pub(crate) fn g() {}
        /// [`crate::in_doc`]
        #[cfg(test)]
        mod tests { use crate::hidden; }
        macro_rules! m { () => { $crate::own::x }; }
        const S: &str = "crate::in_string";
    "#;
    let mut found = BTreeSet::new();
    crate_paths(TokenStream::from_str(source).expect("tokens"), &mut found);
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["alpha", "beta", "delta", "gamma"]);
}

/// Files short enough to read in one sitting.
#[test]
fn no_source_file_is_over_500_lines() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).ok()?.lines().count();
            (lines > 500).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// Tables written outside their owner, (table, writing module): each to be removed (then
/// deleted here). Empty: keep it so.
const WRITES_ALLOWED: &[(&str, &str)] = &[];

/// Which module owns each table, from ARCHITECTURE.md's owner block (`table: module` a line).
fn owners() -> BTreeMap<String, String> {
    architecture_block("owners")
        .iter()
        .filter_map(|line| {
            let (table, module) = line.split_once(':')?;
            let module = module.split('(').next().unwrap_or("").trim();
            Some((table.trim().to_owned(), module.to_owned()))
        })
        .filter(|(table, module)| !table.is_empty() && !module.is_empty())
        .collect()
}

/// Every string literal in `stream` but doc comments (prose, not statements), test items left
/// out.
fn literals(stream: TokenStream, found: &mut Vec<String>) {
    walk(stream, &mut |trees, i| {
        let doc = i > 0
            && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '#')
            && matches!(&trees[i], TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket
                && g.stream().to_string().starts_with("doc"));
        if let TokenTree::Literal(literal) = &trees[i] {
            found.push(literal.to_string());
        }
        !doc
    });
}

/// The tables an SQL text writes.
fn written_tables(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut tables = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        let table = match pair {
            ["UPDATE", table] => Some(*table),
            ["INTO", table] if i > 0 && words[i - 1] == "INSERT" => Some(*table),
            ["FROM", table] if i > 0 && words[i - 1] == "DELETE" => Some(*table),
            _ => None,
        };
        if let Some(table) = table.filter(|t| {
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }) {
            tables.push(table.to_owned());
        }
    }
    tables
}

#[test]
fn every_table_is_written_only_by_the_module_that_owns_it() {
    let owners = owners();
    assert!(
        owners.len() >= 20,
        "the owner block lists {} tables",
        owners.len()
    );
    let mut writes: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (name, module, text) in library_files() {
        let mut found = Vec::new();
        literals(TokenStream::from_str(&text).expect("tokens"), &mut found);
        for table in found.iter().flat_map(|sql| written_tables(sql)) {
            writes
                .entry((table, module.clone()))
                .or_default()
                .insert(name.clone());
        }
    }
    let allowed: BTreeSet<(String, String)> = WRITES_ALLOWED
        .iter()
        .map(|(t, m)| ((*t).to_owned(), (*m).to_owned()))
        .collect();
    let mut problems = Vec::new();
    for ((table, module), files) in &writes {
        match owners.get(table) {
            None => problems.push(format!(
                "{table} (written in {files:?}) has no owner in ARCHITECTURE.md"
            )),
            Some(owner)
                if owner != module && !allowed.contains(&(table.clone(), module.clone())) =>
            {
                problems.push(format!(
                    "{table} is {owner}'s, but {module} writes it in {files:?}"
                ));
            }
            _ => {}
        }
    }
    for (table, module) in &allowed {
        if !writes.contains_key(&(table.clone(), module.clone())) {
            problems.push(format!(
                "{module} no longer writes {table}: delete it from WRITES_ALLOWED"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_table_reader_sees_writes_in_statements_only() {
    assert_eq!(
        written_tables("UPDATE doors SET x = 1; INSERT INTO outbox (a) SELECT 1; DELETE FROM t_1"),
        ["doors", "outbox", "t_1"]
    );
    assert!(written_tables("SELECT * FROM doors WHERE updated").is_empty());
}
