//! The shape of `src/`: the library's top-level modules import each other without cycles
//! (the core imports downward; only the plugin layer sits on top of everything).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::NAME` references per top-level module, outside comments and test modules.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let deps = graph.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(
        graph.contains_key("plugin") && graph.contains_key("acl"),
        "{graph:?}"
    );
    // Kahn's algorithm: repeatedly remove modules that import no remaining module.
    let mut left = graph.clone();
    while !left.is_empty() {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            !leaves.is_empty(),
            "the modules {:?} import each other in a cycle: {left:?}",
            left.keys().collect::<Vec<_>>()
        );
        for m in leaves {
            left.remove(&m);
        }
    }
    // Nothing in the core imports the plugin layer, and error.rs is a leaf.
    for (module, deps) in &graph {
        assert!(
            !deps.contains("plugin"),
            "{module} imports the plugin layer"
        );
    }
    assert!(
        graph["error"].is_empty(),
        "error imports {:?}",
        graph["error"]
    );
}
