//! Changing the node list: storage nodes as real processes, records
//! written through a gateway's `ClusterStore`, every node's copies checked
//! directly over the wire protocol.
//! - A new node joins: it backfills the records it now owns; copies the
//!   others no longer own move to their owners before they go.
//! - Tombstones of removed queue entries are purged after their time.
//! - A node is removed (its disk gone): the records it held are copied to
//!   their new owners from the remaining copies.

use mxgate::cluster::client::Client;
use mxgate::cluster::core::placement::owners;
use mxgate::cluster::gateway::Cluster;
use mxgate::cluster::store::ClusterStore;
use mxgate::cluster::tls::Security;
use mxgate::cluster::wire::{Request, Response};
use mxgate::store::Store;
use mxgate::store::conformance::sample_entry;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "membership-secret-0123";
const RECORDS: usize = 300;

struct Node {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, members: &[String]) {
        self.start_with(members, "");
    }

    fn start_with(&mut self, members: &[String], node_extra: &str) {
        let list: Vec<String> = members.iter().map(|n| format!("\"{n}\"")).collect();
        let toml = format!(
            "[node]\nlisten = \"{}\"\nrepair_interval = \"1s\"\n{node_extra}[storage]\npath = \"{}\"\n\
             [cluster]\nnodes = [{}]\nreplicas = 2\nwrite_quorum = 2\nsecret = \"{SECRET}\"\n",
            self.name,
            self.dir.join("data").display(),
            list.join(", ")
        );
        std::fs::write(self.dir.join("node.toml"), toml).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mxgate"))
            .args(["storage", "--config"])
            .arg(self.dir.join("node.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn new_node(root: &Path, i: usize) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    Node { name: format!("127.0.0.1:{port}"), dir, child: None }
}

fn cluster_cfg(members: &[String]) -> mxgate::config::Cluster {
    let list: Vec<String> = members.iter().map(|n| format!("\"{n}\"")).collect();
    let text = format!("[cluster]\nnodes = [{}]\nsecret = \"{SECRET}\"\n", list.join(", "));
    #[derive(serde::Deserialize)]
    struct File {
        cluster: mxgate::config::Cluster,
    }
    let c =
        config::Config::builder().add_source(config::File::from_str(&text, config::FileFormat::Toml)).build().unwrap();
    c.try_deserialize::<File>().unwrap().cluster
}

/// Which of `keys` node `name` holds, asked directly.
async fn held(name: &str, keys: &[Vec<u8>]) -> Option<Vec<bool>> {
    let sec = Security::new(&cluster_cfg(&[name.to_string()]), "checker").unwrap();
    let client = Client::new(name.to_string(), sec);
    match client.call(&Request::Get { keys: keys.to_vec(), bodies: true }, Duration::from_secs(5)).await {
        Ok(Response::Cells(cells)) => Some(cells.into_iter().map(|(_, c, b)| c.is_some() && b.is_some()).collect()),
        _ => None,
    }
}

/// Waits (bounded) until every key is on every one of its owners among
/// `members`; returns the keys still missing somewhere.
async fn wait_placed(members: &[String], keys: &[Vec<u8>]) -> Vec<String> {
    let mut missing = Vec::new();
    for _ in 0..60 {
        missing.clear();
        for (i, name) in members.iter().enumerate() {
            let Some(have) = held(name, keys).await else {
                missing.push(format!("{name} unreachable"));
                continue;
            };
            for (k, h) in keys.iter().zip(have) {
                if !h && owners(k, members, 2).contains(&i) {
                    missing.push(format!("{} on {name}", String::from_utf8_lossy(k)));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    missing
}

/// Waits (bounded) until every node holds exactly the keys it owns.
async fn wait_exact(members: &[String], keys: &[Vec<u8>]) -> Vec<String> {
    let mut wrong = Vec::new();
    for _ in 0..60 {
        wrong.clear();
        for (i, name) in members.iter().enumerate() {
            let have = held(name, keys).await.unwrap_or_default();
            for (k, h) in keys.iter().zip(have) {
                if h != owners(k, members, 2).contains(&i) {
                    wrong.push(format!("{} on {name}: held {h}", String::from_utf8_lossy(k)));
                }
            }
        }
        if wrong.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wrong
}

async fn write_records(members: &[String]) -> Vec<Vec<u8>> {
    let cluster = Cluster::new(&cluster_cfg(members), "writer".into()).await.unwrap();
    cluster.wait_for_quorum().await;
    let store = ClusterStore::start(cluster);
    let mut keys = Vec::new();
    for i in 0..RECORDS {
        let id = format!("m{i:04}");
        store.enqueue(sample_entry(&id), format!("body {i}\r\n").into_bytes()).await.unwrap();
        keys.push(format!("q{id}").into_bytes());
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_backfills_and_a_removed_nodes_records_are_re_replicated() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..4).map(|i| new_node(root.path(), i)).collect();
    let three: Vec<String> = nodes[..3].iter().map(|n| n.name.clone()).collect();
    for n in &mut nodes[..3] {
        n.start(&three);
    }
    let keys = write_records(&three).await;
    assert_eq!(wait_placed(&three, &keys).await, Vec::<String>::new(), "written to their owners");

    // A fourth node joins: every node restarts with the longer list.
    let four: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    for n in &mut nodes[..3] {
        n.stop();
    }
    for n in &mut nodes {
        n.start(&four);
    }
    let missing = wait_placed(&four, &keys).await;
    assert!(missing.is_empty(), "after the join, missing: {missing:?}");
    let newcomer = held(&four[3], &keys).await.unwrap().into_iter().filter(|h| *h).count();
    assert!(newcomer > RECORDS / 4, "the new node backfilled only {newcomer} records");
    // Copies a node no longer owns move to their owners and then go: in
    // the end every node holds exactly what it owns.
    assert_eq!(wait_exact(&four, &keys).await, Vec::<String>::new());

    // Node 1 is removed for good, disk and all.
    for n in &mut nodes {
        n.stop();
    }
    std::fs::remove_dir_all(nodes[1].dir.join("data")).unwrap();
    let remaining: Vec<String> = [0, 2, 3].iter().map(|i| nodes[*i].name.clone()).collect();
    for i in [0, 2, 3] {
        nodes[i].start(&remaining);
    }
    let missing = wait_placed(&remaining, &keys).await;
    assert!(missing.is_empty(), "after the removal, missing: {missing:?}");
}

/// Status of one node, asked directly.
async fn records(name: &str) -> Option<u64> {
    let sec = Security::new(&cluster_cfg(&[name.to_string()]), "checker").unwrap();
    match Client::new(name.to_string(), sec).call(&Request::Status, Duration::from_secs(5)).await {
        Ok(Response::Status(s)) => Some(s.records),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tombstones_are_purged_after_their_time() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..3).map(|i| new_node(root.path(), i)).collect();
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    for n in &mut nodes {
        n.start_with(&names, "tombstone_ttl = \"2s\"\n");
    }
    let cluster = Cluster::new(&cluster_cfg(&names), "writer".into()).await.unwrap();
    cluster.wait_for_quorum().await;
    let store = ClusterStore::start(cluster);
    for i in 0..100 {
        let id = format!("t{i:03}");
        store.enqueue(sample_entry(&id), b"x\r\n".to_vec()).await.unwrap();
        store.remove(&id).await.unwrap();
    }
    store.enqueue(sample_entry("kept"), b"kept\r\n".to_vec()).await.unwrap();
    let total = || async {
        let mut sum = 0;
        for n in &names {
            sum += records(n).await.unwrap_or(u64::MAX / 4);
        }
        sum
    };
    assert!(total().await >= 200, "100 tombstones, two copies each");
    // What stays: the live entry and the writer's heartbeat, two copies each.
    let mut left = total().await;
    for _ in 0..60 {
        if left <= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = total().await;
    }
    assert_eq!(left, 4, "records left on the nodes");
    assert_eq!(store.body("kept").await.unwrap(), b"kept\r\n");
    assert_eq!(store.get("t000").await.unwrap(), None);
}
