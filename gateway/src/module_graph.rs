//! Keeps the gateway's modules free of import cycles (ARCHITECTURE.md, "Code map"): adapters
//! (`routes/`, `console/`) depend on the flows, the flows on the clients and shared types, never
//! the other way round. Each source file is a module; a module depends on another when it names
//! a path into it (`crate::…` or `super::…`, in a `use` or inline). A cycle is reported with the
//! modules that form it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every source file of the crate as its module path (`routes/stats/mod.rs` is `routes::stats`,
/// `lib.rs` the root), with its code.
fn modules() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(&root).expect("under src").with_extension("");
                let mut module: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if module.last().is_some_and(|last| last == "mod" || last == "lib") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                found.insert(module, without_tests(&text).to_owned());
            }
        }
    }
    found
}

/// A file's code before its inline test module (`#[cfg(test)]` over `mod … {`): tests may
/// reach anywhere.
fn without_tests(text: &str) -> &str {
    let mut at = 0;
    while let Some(found) = text[at..].find("#[cfg(test)]") {
        let start = at + found;
        let next_line = text[start..].lines().nth(1).unwrap_or_default().trim_end();
        if next_line.starts_with("mod ") && next_line.ends_with('{') {
            return &text[..start];
        }
        at = start + 1;
    }
    text
}

/// The paths a `use` tree names, braces expanded: `a::{b, c::{d}}` is `a::b`, `a::c::d`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let item = tree.split(" as ").next().unwrap_or_default().trim();
        out.push(format!("{prefix}{item}"));
        return;
    };
    let prefix = format!("{prefix}{}", &tree[..open]);
    // A string that reads like a `use` (`"…; use {}, or {x}"`) may leave no brace to close.
    let close = tree.rfind('}').filter(|close| *close > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&inner[start..i], &prefix, out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand(&inner[start..], &prefix, out);
    }
}

/// Where the `use` declaration that starts a line of `statement` begins, and its tree.
fn use_tree(statement: &str) -> Option<(usize, &str)> {
    let mut offset = 0;
    for line in statement.split_inclusive('\n') {
        let code = line.trim_start();
        let start = offset + line.len() - code.len();
        offset += line.len();
        let rest = code.strip_prefix("pub(crate) ").or_else(|| code.strip_prefix("pub ")).unwrap_or(code);
        if let Some(tree) = rest.strip_prefix("use ") {
            return Some((start, tree));
        }
    }
    None
}

/// Every path of two segments or more that code outside `use` declarations names, as written:
/// `crate::…`, `super::…`, and relative ones (`routes::…` in the crate root), which
/// [`target`] keeps only when they lead into a module.
fn inline_paths(code: &str, paths: &mut Vec<String>) {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut at = 0;
    while let Some(found) = code[at..].find("::") {
        let sep = at + found;
        let start = code[..sep].rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
        at = sep + 2;
        // Only where a path starts: not in the middle of one, nor a turbofish or `<T as …>::`.
        if start == sep || code[..start].ends_with(|c: char| c == ':' || word(c)) {
            continue;
        }
        let end = code[start..].find(|c: char| !(word(c) || c == ':')).map_or(code.len(), |e| start + e);
        paths.push(code[start..end].trim_end_matches(':').to_owned());
        at = end.max(at);
    }
}

/// Every path into the crate a module's code may name, as written.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for statement in code.split(';') {
        match use_tree(statement) {
            Some((start, tree)) => {
                inline_paths(&statement[..start], &mut paths);
                expand(tree, "", &mut paths);
            }
            None => inline_paths(statement, &mut paths),
        }
    }
    paths
}

/// The module a path leads into: its longest prefix that is a module. A path that starts
/// elsewhere than `crate`, `super` or `self` leads into the crate only through a child of `from`.
fn target(from: &Module, path: &str, modules: &BTreeMap<Module, String>) -> Option<Module> {
    let mut segments = path.split("::").map(str::trim).filter(|s| !s.is_empty()).peekable();
    let mut module: Module = match *segments.peek()? {
        "crate" => vec![],
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        "self" => from.clone(),
        child if modules.contains_key(&[from.as_slice(), &[child.to_owned()]].concat()) => {
            let mut module = from.clone();
            module.push(child.to_owned());
            module
        }
        _ => return None,
    };
    segments.next();
    for segment in segments {
        match segment {
            "super" => {
                module.pop();
            }
            "self" => {}
            name => {
                module.push(name.to_owned());
                if !modules.contains_key(&module) {
                    module.pop();
                    break;
                }
            }
        }
    }
    Some(module)
}

fn dependencies(modules: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    modules
        .iter()
        .map(|(module, code)| {
            let targets = named_paths(code).into_iter().filter_map(|path| target(module, &path, modules));
            (module.clone(), targets.filter(|t| t != module).collect())
        })
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, (usize, usize)>,
        stack: Vec<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, (n, n));
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let Some((w, _)) = self.graph.get_key_value(w) else { continue };
                let low = match self.index.get(w) {
                    None => {
                        self.visit(w);
                        self.index[w].1
                    }
                    Some(&(i, _)) if self.stack.contains(&w) => i,
                    Some(_) => continue,
                };
                let entry = self.index.get_mut(v).expect("visited");
                entry.1 = entry.1.min(low);
            }
            if self.index[v].0 == self.index[v].1 {
                let at = self.stack.iter().rposition(|m| *m == v).expect("on the stack");
                let component: Vec<Module> = self.stack.drain(at..).cloned().collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), stack: vec![], found: vec![] };
    for module in graph.keys() {
        if !walk.index.contains_key(module) {
            walk.visit(module);
        }
    }
    walk.found
}

fn name(module: &Module) -> String {
    if module.is_empty() { "crate".to_owned() } else { module.join("::") }
}

/// A cycle as one line: its modules in order, then the dependencies that close it.
fn describe(cycle: &[Module], graph: &BTreeMap<Module, BTreeSet<Module>>) -> (String, String) {
    let mut names: Vec<String> = cycle.iter().map(name).collect();
    names.sort();
    let edges = cycle
        .iter()
        .flat_map(|from| graph[from].iter().filter(|to| cycle.contains(to)).map(move |to| (from, to)))
        .map(|(from, to)| format!("{} → {}", name(from), name(to)));
    (names.join(" ⇄ "), edges.collect::<Vec<_>>().join(", "))
}

#[test]
fn no_two_gateway_modules_depend_on_each_other() {
    let modules = modules();
    assert!(modules.contains_key(&vec!["flows".to_owned(), "keys".to_owned()]), "the crate's modules were found");
    let graph = dependencies(&modules);
    let found: Vec<String> = cycles(&graph)
        .iter()
        .map(|cycle| describe(cycle, &graph))
        .map(|(names, edges)| format!("{names}: {edges}"))
        .collect();
    assert!(found.is_empty(), "import cycles among the gateway's modules: {found:#?}");
}

#[test]
fn the_cycle_check_follows_use_trees_and_inline_paths() {
    let modules: BTreeMap<Module, String> = [
        (vec![], "mod a;\nfn main() { std::process::exit(c::h().into()) }".to_owned()),
        (vec!["a".to_owned()], "use crate::{b::{Thing, other}, c};".to_owned()),
        (vec!["b".to_owned()], "fn f() { super::a::g() }".to_owned()),
        (vec!["c".to_owned()], "fn h() -> u8 { 0 }".to_owned()),
    ]
    .into();
    let graph = dependencies(&modules);
    assert_eq!(graph[&vec!["a".to_owned()]].len(), 2);
    assert_eq!(graph[&vec![]], [vec!["c".to_owned()]].into());
    let found = cycles(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().map(name).collect::<BTreeSet<_>>(), ["a".to_owned(), "b".to_owned()].into());
}
