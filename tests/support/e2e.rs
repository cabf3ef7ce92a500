//! End-to-end helpers: the real `handler` binary (serve and `front-end`) as child processes
//! on free loopback ports, a demo PKI made with `CertSpec`, and the real `curl`.
//!
//! Every child is killed on drop and every wait is bounded. Include with
//! `#[path = "support/e2e.rs"] mod e2e;`.
#![allow(dead_code)]

use mtls_handler::tools::pki::{CertSpec, Eku, Issued};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const HANDLER: &str = env!("CARGO_BIN_EXE_handler");
pub const CLIENT_CN: &str = "api-client.contoso.com";
/// The longest any test waits for a process to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process that is killed and reaped when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts TCP connections, the child exits, or the timeout passes.
fn wait_listening(guard: &mut ChildGuard, port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if let Ok(Some(_)) = guard.child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{} did not listen on {port} within {START_TIMEOUT:?}",
        guard.name
    );
}

/// Spawns `make(port)` on a free port, retrying with another port if the child exits
/// before listening (the port was taken in between).
fn spawn_listening(name: &str, make: impl Fn(u16) -> Command) -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = make(port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut guard = ChildGuard {
            child: cmd.spawn().unwrap(),
            name: name.to_owned(),
        };
        if wait_listening(&mut guard, port) {
            return (guard, port);
        }
    }
    panic!("{name} exited before listening, five times");
}

/// The handler (serve) with exactly `env` as its environment, plus its port.
pub fn start_handler(env: &[(&str, &str)]) -> (ChildGuard, u16) {
    spawn_listening("handler", |port| {
        let mut c = Command::new(HANDLER);
        c.env_clear()
            .envs(env.iter().copied())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string());
        c
    })
}

/// `handler front-end` with the PKI's server certificate in front of `backend_port`.
pub fn start_front_end(pki: &Pki, backend_port: u16, mode: &str) -> (ChildGuard, u16) {
    start_front_end_with(
        &pki.path("server.pem"),
        &pki.path("server.key"),
        backend_port,
        mode,
    )
}

/// `handler front-end` with the given server certificate and key.
pub fn start_front_end_with(
    cert: &Path,
    key: &Path,
    backend_port: u16,
    mode: &str,
) -> (ChildGuard, u16) {
    spawn_listening("front-end", |port| {
        let mut c = Command::new(HANDLER);
        c.env_clear()
            .arg("front-end")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--backend", &format!("http://127.0.0.1:{backend_port}")])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(["--mode", mode]);
        c
    })
}

/// A demo PKI on disk: root and issuing CA, a partner client, a server for localhost, an
/// expired client and a self-signed client with the allowlisted name.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub client: Issued,
    pub expired: Issued,
    pub untrusted: Issued,
}

impl Pki {
    pub fn new() -> Self {
        let now = now();
        let dir = tempfile::tempdir().unwrap();
        let root = CertSpec::ca("e2e Root CA", now, 30).self_signed().unwrap();
        let issuing = CertSpec::ca("e2e Issuing CA", now, 30)
            .issued_by(&root)
            .unwrap();
        let client = CertSpec::leaf(CLIENT_CN, now, 30)
            .issued_by(&issuing)
            .unwrap();
        let server = CertSpec::leaf("localhost", now, 30)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_dns_names(&["localhost"])
            .with_ip_addresses(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .issued_by(&issuing)
            .unwrap();
        let expired = CertSpec::leaf(CLIENT_CN, now, 0)
            .with_validity(now - 10 * 86_400, now - 86_400)
            .issued_by(&issuing)
            .unwrap();
        let untrusted = CertSpec::leaf(CLIENT_CN, now, 30).self_signed().unwrap();
        let pki = Self {
            dir,
            client,
            expired,
            untrusted,
        };
        let mut ca = issuing.cert_pem().unwrap();
        ca.extend(root.cert_pem().unwrap());
        pki.write("ca.pem", &ca);
        let mut server_chain = server.cert_pem().unwrap();
        server_chain.extend(issuing.cert_pem().unwrap());
        pki.write("server.pem", &server_chain);
        pki.write("server.key", &server.key_pem().unwrap());
        for (name, cert) in [
            ("client", &pki.client),
            ("expired", &pki.expired),
            ("untrusted", &pki.untrusted),
        ] {
            pki.write(&format!("{name}.pem"), &cert.cert_pem().unwrap());
            pki.write(&format!("{name}.key"), &cert.key_pem().unwrap());
        }
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    /// The handler settings that trust this PKI's CAs for the default common name.
    pub fn handler_env(&self) -> Vec<(&'static str, String)> {
        vec![("CLIENT_CERT_CA_PATH", self.path_str("ca.pem"))]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// What one `curl` run gave.
#[derive(Debug)]
pub struct Curl {
    /// curl's exit code (0 when an HTTP answer arrived, whatever its status).
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

impl Curl {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} / {}", self.body, self.stderr))
    }
}

/// Runs the real curl against `https://localhost:{port}{path}`, trusting the PKI's CA,
/// with `extra` arguments (e.g. `--cert`), bounded by `--max-time`.
pub fn curl(pki: &Pki, port: u16, path: &str, extra: &[&str]) -> Curl {
    let out: Output = run_bounded(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--noproxy", "*"])
            .arg("--cacert")
            .arg(pki.path("ca.pem"))
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://localhost:{port}{path}")),
        None,
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `--cert X.pem --key X.key` for one of the PKI's clients.
pub fn cert_args(pki: &Pki, name: &str) -> Vec<String> {
    vec![
        "--cert".into(),
        pki.path_str(&format!("{name}.pem")),
        "--key".into(),
        pki.path_str(&format!("{name}.key")),
    ]
}

/// A loopback HTTP/1.1 backend that answers every request with the request's header
/// block as a JSON list of `[name, value]` pairs, so tests see exactly what was forwarded.
pub struct EchoBackend {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl EchoBackend {
    pub fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        std::thread::spawn(move || echo_one(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { port, stop }
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn echo_one(mut stream: TcpStream) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::to_string(&headers).unwrap();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The values of `name` in an [`EchoBackend`] answer.
pub fn echoed(body: &serde_json::Value, name: &str) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `handler` with `args`, exactly `env`, and `stdin`, bounded by a timeout.
pub fn run_handler(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    run_bounded(
        Command::new(HANDLER)
            .env_clear()
            .envs(env.iter().copied())
            .args(args),
        stdin,
        Duration::from_secs(30),
    )
}

/// Runs `cmd` to completion in its own process group, killing the whole group (the
/// command and everything it started) after `limit`.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).unwrap();
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

/// The repository root (the app root).
pub fn app_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `handler front-end` with the given server certificate and key and `extra` arguments
/// (e.g. `--header-format xfcc --forward-chain`), always `--mode required`.
pub fn start_front_end_args(
    cert: &Path,
    key: &Path,
    backend_port: u16,
    extra: &[&str],
) -> (ChildGuard, u16) {
    spawn_listening("front-end", |port| {
        let mut c = Command::new(HANDLER);
        c.env_clear()
            .arg("front-end")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--backend", &format!("http://127.0.0.1:{backend_port}")])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(["--mode", "required"])
            .args(extra);
        c
    })
}
