//! The storage trait's conformance suite on the cluster backend: three
//! storage nodes in this process (real TLS connections on loopback), and
//! gateways' `ClusterStore`s in front of them.

use mxgate::cluster::gateway::Cluster;
use mxgate::cluster::store::ClusterStore;
use mxgate::store::conformance::{self, sample_record};
use mxgate::store::{Actor, AuditEntry, Changed, QStatus, Store};
use std::sync::Arc;

const SECRET: &str = "conformance-secret-0123";

struct Nodes {
    names: Vec<String>,
    _dirs: Vec<tempfile::TempDir>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn cluster_toml(names: &[String], secret: &str) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("[cluster]\nnodes = [{}]\nreplicas = 2\nwrite_quorum = 2\nsecret = \"{secret}\"\n", list.join(", "))
}

async fn start_nodes(n: usize) -> Nodes {
    let names: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut dirs = Vec::new();
    for name in &names {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[node]\nlisten = \"{name}\"\nrepair_interval = \"1s\"\n[storage]\npath = \"{}\"\n{}",
            dir.path().join("data").display(),
            cluster_toml(&names, SECRET)
        );
        let path = dir.path().join("node.toml");
        std::fs::write(&path, toml).unwrap();
        let cfg = mxgate::config::load_node(&path).unwrap();
        mxgate::cluster::node::start(cfg).await.unwrap();
        dirs.push(dir);
    }
    Nodes { names, _dirs: dirs }
}

async fn gateway(nodes: &Nodes, name: &str, secret: &str) -> Result<Arc<Cluster>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        cluster: mxgate::config::Cluster,
    }
    let f: File = toml_like(&cluster_toml(&nodes.names, secret));
    Cluster::new(&f.cluster, name.to_string()).await
}

/// Parses a `[cluster]` snippet the way the gateway's loader does.
fn toml_like<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let c =
        config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml)).build().unwrap();
    c.try_deserialize().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_store_passes_the_conformance_suite() {
    let nodes = start_nodes(3).await;
    let cluster = gateway(&nodes, "gw-a", SECRET).await.unwrap();
    assert_eq!(cluster.writable_count(), 3, "{:?}", cluster.health());
    let store = ClusterStore::start(cluster);
    conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_racing_to_release_deliver_once() {
    let nodes = start_nodes(3).await;
    let a = ClusterStore::start(gateway(&nodes, "gw-a", SECRET).await.unwrap());
    let b = ClusterStore::start(gateway(&nodes, "gw-b", SECRET).await.unwrap());
    for m in 0..10 {
        let id = format!("race{m}");
        a.quarantine(sample_record(&id, 1_700_000_000), b"Subject: held\r\n\r\nbody\r\n".to_vec()).await.unwrap();
        fn release<'a>(
            s: &'a ClusterStore,
            id: &str,
            who: &str,
        ) -> mxgate::store::BoxFut<'a, Result<Option<Changed>, mxgate::store::StoreError>> {
            let actor = Actor { by: who.into(), at: 1 };
            let audit =
                AuditEntry { at: 1, by: who.into(), action: "release".into(), id: id.into(), detail: String::new() };
            let entry_id = id.to_string();
            let make: mxgate::store::ReleaseFn =
                Box::new(move |_| (conformance::sample_entry(&entry_id), b"X-Released: yes\r\n".to_vec()));
            s.q_release(id, actor, audit, make)
        }
        let (ra, rb) = tokio::join!(release(&a, &id, "a"), release(&b, &id, "b"));
        let done = [ra.unwrap(), rb.unwrap()].into_iter().filter(|r| matches!(r, Some(Changed::Done(_)))).count();
        assert!(done <= 1, "{id}: both gateways released it");
        // Whatever the race, the record ends released and queued once.
        let rec = a.q_get(&id).await.unwrap().unwrap();
        assert_eq!(rec.status, QStatus::Released, "{id}");
        let body = b.body(&id).await.unwrap();
        assert!(body.starts_with(b"X-Released: yes\r\n") && body.ends_with(b"body\r\n"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_with_the_wrong_secret_is_refused() {
    let nodes = start_nodes(3).await;
    let cluster = gateway(&nodes, "intruder", "not-the-cluster-secret").await.unwrap();
    assert_eq!(cluster.writable_count(), 0);
    let h = cluster.health();
    let why = h[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("cluster.secret"), "{why}");
}
