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
    assert_pairs_agree(&nodes).await;
}

/// Every write reached both owners, so each pair of nodes must report the
/// same digests of what they share: the digests the writers keep
/// incrementally agree with each other.
async fn assert_pairs_agree(nodes: &Nodes) {
    use mxgate::cluster::wire::{Request, Response};
    let sec = mxgate::cluster::tls::Security::new(&toml_like::<File>(&cluster_toml(&nodes.names, SECRET)).cluster, "t")
        .unwrap();
    let digests = |at: &str, about: &str| {
        let c = mxgate::cluster::client::Client::new(at.to_string(), sec.clone());
        let req = Request::Digests { peer: about.to_string() };
        async move {
            match c.call(&req, std::time::Duration::from_secs(5)).await.unwrap() {
                Response::Digests(d) => d,
                other => panic!("{other:?}"),
            }
        }
    };
    for a in &nodes.names {
        for b in nodes.names.iter().filter(|b| *b != a) {
            // The gateway's heartbeat may land between the two questions:
            // ask again before calling it a disagreement.
            let mut tries = 0;
            let (x, y) = loop {
                let (x, y) = (digests(a, b).await, digests(b, a).await);
                tries += 1;
                if x == y || tries == 3 {
                    break (x, y);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            assert!(x.iter().any(|v| *v != 0), "{a} shares records with {b}");
            assert_eq!(x, y, "{a} and {b} disagree about what they share");
        }
    }
}

#[derive(serde::Deserialize)]
struct File {
    cluster: mxgate::config::Cluster,
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

/// Writes a CA and a certificate it signs for 127.0.0.1, as PEM files in
/// `dir`; returns (cert, key, ca) paths.
fn issue(dir: &std::path::Path, ca: &(rcgen::Certificate, rcgen::KeyPair), name: &str) -> [std::path::PathBuf; 3] {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca.0, &ca.1).unwrap();
    let paths = [dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")), dir.join(format!("{name}-ca.pem"))];
    std::fs::write(&paths[0], cert.pem()).unwrap();
    std::fs::write(&paths[1], key.serialize_pem()).unwrap();
    std::fs::write(&paths[2], ca.0.pem()).unwrap();
    paths
}

fn new_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (p.self_signed(&key).unwrap(), key)
}

fn mtls_toml(names: &[String], files: &[std::path::PathBuf; 3]) -> String {
    format!(
        "{}cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        cluster_toml(names, SECRET),
        files[0].display(),
        files[1].display(),
        files[2].display()
    )
}

/// With `cert`, `key` and `ca` set, certificates are checked both ways on
/// top of the secret: a gateway whose certificate another CA signed is
/// refused even though it knows the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_tls_refuses_a_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let names: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    for (i, name) in names.iter().enumerate() {
        let files = issue(dir.path(), &ca, &format!("node{i}"));
        let toml = format!(
            "[node]\nlisten = \"{name}\"\n[storage]\npath = \"{}\"\n{}",
            dir.path().join(format!("data{i}")).display(),
            mtls_toml(&names, &files)
        );
        let path = dir.path().join(format!("node{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        mxgate::cluster::node::start(mxgate::config::load_node(&path).unwrap()).await.unwrap();
    }
    let good: File = toml_like(&mtls_toml(&names, &issue(dir.path(), &ca, "gw")));
    let cluster = Cluster::new(&good.cluster, "gw".into()).await.unwrap();
    assert_eq!(cluster.writable_count(), 2, "{:?}", cluster.health());
    let store = ClusterStore::start(cluster);
    store.enqueue(conformance::sample_entry("m1"), b"x\r\n".to_vec()).await.unwrap();
    assert_eq!(store.body("m1").await.unwrap(), b"x\r\n");

    let mut rogue_files = issue(dir.path(), &new_ca(), "rogue");
    // The rogue trusts the real CA (so it would accept the nodes) but its
    // own certificate is signed by another.
    rogue_files[2] = dir.path().join("gw-ca.pem");
    let rogue: File = toml_like(&mtls_toml(&names, &rogue_files));
    let cluster = Cluster::new(&rogue.cluster, "rogue".into()).await.unwrap();
    assert_eq!(cluster.writable_count(), 0, "{:?}", cluster.health());
    let why = cluster.health()[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("refused our certificate"), "{why}");
}
