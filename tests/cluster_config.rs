//! Configuration errors of the cluster, as an operator meets them: the
//! storage node and the gateway name the file and the key, and exit.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mxgate")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

const NODES: &str = "nodes = [\"127.0.0.1:7401\", \"127.0.0.1:7402\", \"127.0.0.1:7403\"]\n";
const SECRET: &str = "secret = \"a-secret-of-enough-length\"\n";

fn node(cluster: &str) -> String {
    format!("[node]\nlisten = \"127.0.0.1:7401\"\n[storage]\npath = \"/tmp/never-used\"\n[cluster]\n{cluster}")
}

#[test]
fn bad_cluster_settings_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, &str)> = vec![
        (node(&format!("{NODES}replicas = 4\n{SECRET}")), "cluster.replicas"),
        (node(&format!("{NODES}write_quorum = 3\n{SECRET}")), "cluster.write_quorum"),
        (node(&format!("{NODES}secret = \"short\"\n")), "cluster.secret"),
        (node(&format!("nodes = [\"127.0.0.1:7402\"]\nreplicas = 1\nwrite_quorum = 1\n{SECRET}")), "node.name"),
        (node(&format!("nodes = [\"127.0.0.1\"]\n{SECRET}")), "cluster.nodes"),
        (node(&format!("{NODES}{SECRET}cert = \"/x.pem\"\n")), "cluster.cert"),
        (node(&format!("{NODES}{SECRET}replica = 2\n")), "cluster.replica"),
        (node(NODES), "cluster.secret"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, &text).unwrap();
        let p = path.to_str().unwrap();
        for args in [["storage", "--config", p], ["check-config", "--config", p]] {
            let (ok, out) = run(&args);
            assert!(!ok, "{args:?} accepted:\n{text}");
            assert!(out.contains(p) && out.contains(&format!("`{key}`")), "{args:?}: {out}");
        }
    }
    let (ok, out) = run(&["check-config", "--config", "config/storage.toml"]);
    assert!(ok && out.contains("configuration OK"), "{out}");
}

#[test]
fn a_gateway_checks_its_cluster_section_too() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string("config/mxgate.toml").unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, format!("{base}\n[cluster]\n{NODES}write_quorum = 0\n{SECRET}")).unwrap();
    let (ok, out) = run(&["check-config", "--config", path.to_str().unwrap()]);
    assert!(!ok && out.contains("`cluster.write_quorum`"), "{out}");
    std::fs::write(&path, format!("{base}\n[cluster]\n{NODES}{SECRET}")).unwrap();
    let (ok, out) = run(&["check-config", "--config", path.to_str().unwrap()]);
    assert!(ok, "{out}");
}
