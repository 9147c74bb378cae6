//! The gateway as a real process, for kill -9 and signal tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub struct Proc {
    pub child: Child,
    pub smtp: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Proc {
    /// Writes a config in `dir` (reused across restarts) and starts the binary.
    pub async fn start(dir: &Path, downstream: SocketAddr, extra: &str) -> Proc {
        let config = dir.join("mxgate.toml");
        let (smtp, admin) = match std::fs::read_to_string(dir.join("ports")) {
            Ok(p) => {
                let (a, b) = p.split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            }
            Err(_) => {
                let (a, b) = (free_addr(), free_addr());
                std::fs::write(dir.join("ports"), format!("{a} {b}")).unwrap();
                super::write_config(dir, &a.to_string(), &b.to_string(), downstream, extra);
                (a, b)
            }
        };
        let log = dir.join(format!("mxgate-{}.log", std::fs::read_dir(dir).unwrap().count()));
        let child = Command::new(env!("CARGO_BIN_EXE_mxgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn mxgate");
        let p = Proc { child, smtp, admin, config, log };
        let up = super::eventually(20, || async { tokio::net::TcpStream::connect(smtp).await.is_ok() }).await;
        assert!(up, "mxgate did not start; log:\n{}", p.log_text());
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..600 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill9();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
