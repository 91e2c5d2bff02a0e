//! A real PostgreSQL for tests: the server named by `WARDEN_TEST_DATABASE_URL`, or else
//! one throwaway cluster per test run, made from the server binaries on the machine
//! (`/usr/lib/postgresql/*/bin`, or `PG_BIN`) on a free 127.0.0.1 port. Test processes
//! share it: the first takes a file lock, runs `initdb` (as the `postgres` user when run
//! as root, which `initdb` refuses) and starts it; the others find it running. A watchdog
//! stops it and removes its files when the test runner exits. Every test gets a database
//! of its own (`database()`), so tests never see each other's rows. A test that stops the
//! database starts a cluster of its own (`Cluster`).

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh, empty database: its URL.
pub struct Database {
    pub url: String,
    /// The server's admin URL (`postgres` database), to stop or inspect it.
    pub server: String,
}

/// Makes a new database on the test server (starting the server first if need be).
pub async fn database() -> Database {
    database_on(server()).await
}

async fn database_on(server: String) -> Database {
    let name = format!("warden_{:016x}", fastrand::u64(..));
    let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL at {server}: {e}"));
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("WARDEN_TEST_DATABASE_URL must name a database: {server}"),
    };
    Database { url, server }
}

/// A cluster of one test's own, which the test may stop and start again (the database
/// going away under the control plane); stopped and removed when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Makes and starts a cluster; returns it with a fresh database's URL.
    pub async fn start() -> (Cluster, Database) {
        let dir = tempfile::tempdir().unwrap();
        let port = start(dir.path(), false);
        let cluster = Cluster { dir, port };
        let server = cluster.server();
        (cluster, database_on(server).await)
    }

    fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast: connections are cut, as when a database host goes away).
    pub fn stop(&self) {
        pg_ctl(self.dir.path(), &["-m", "fast", "stop"]);
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        pg_ctl(self.dir.path(), &["-o", &options(self.dir.path(), self.port), "-w", "-t", "30", "start"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = as_owner(&bin_dir().join("pg_ctl"));
        stop.args(["-D"]).arg(self.dir.path().join("data")).args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

/// The admin URL of the server tests use, starting the run's cluster if need be.
pub fn server() -> String {
    if let Ok(url) = std::env::var("WARDEN_TEST_DATABASE_URL") {
        return url;
    }
    // nextest runs each test in a process of its own under one runner; `cargo test` runs
    // them as threads of one process. Either way the parent outlives every test.
    let runner = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| parent_pid().to_string());
    let dir = std::env::temp_dir().join(format!("warden-pg-{runner}"));
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join("lock")).unwrap();
    lock.lock().unwrap();
    let port_file = dir.join("port");
    let port = match std::fs::read_to_string(&port_file) {
        Ok(port) => port.trim().parse::<u16>().unwrap(),
        Err(_) => {
            let port = start(&dir, true);
            std::fs::File::create(&port_file).unwrap().write_all(port.to_string().as_bytes()).unwrap();
            port
        }
    };
    drop(lock);
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// The directory of `initdb` and `pg_ctl`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql (apt-get install postgresql), or PG_BIN")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()));
    versions.pop().expect("a PostgreSQL version with initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn parent_pid() -> u32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command name in parentheses: state, then the parent's pid.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `program args...`, as the `postgres` user when this is root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes and starts a cluster in `dir`; returns its port. With `watched`, a watchdog
/// stops and removes it when the test runner exits.
fn start(dir: &Path, watched: bool) -> u16 {
    let bin = bin_dir();
    let data = dir.join("data");
    if is_root() {
        let mut chown = Command::new("chown");
        chown.args(["-R", "postgres:postgres"]).arg(dir);
        run(chown, "chown the test cluster's directory");
    }
    let mut initdb = as_owner(&bin.join("initdb"));
    initdb.args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"]).arg(&data);
    run(initdb, "initdb");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    pg_ctl(dir, &["-o", &options(dir, port), "-w", "-t", "30", "start"]);
    if !watched {
        return port;
    }
    // Stops the cluster and removes it when the test runner is gone (not `kill -0`, which
    // the postgres user may not send to a root runner).
    let watchdog = format!(
        "while [ -d /proc/{runner} ]; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop; rm -rf {dir}",
        runner = parent_pid(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut sh = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "setsid", "-f", "sh", "-c", &watchdog]);
        c
    } else {
        let mut c = Command::new("setsid");
        c.args(["-f", "sh", "-c", &watchdog]);
        c
    };
    sh.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // setsid -f: the watchdog runs on in a session of its own; this returns at once.
    assert!(sh.status().expect("the test cluster's watchdog").success(), "the test cluster's watchdog did not start");
    port
}

/// The server's settings: loopback only, its socket in `dir`, durability off (a test
/// database need not survive a crash), room for many replicas' pools.
fn options(dir: &Path, port: u16) -> String {
    format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
        dir.display()
    )
}

/// `pg_ctl -D dir/data -l dir/log ARGS`, as the cluster's owner.
fn pg_ctl(dir: &Path, args: &[&str]) {
    let mut pg_ctl = as_owner(&bin_dir().join("pg_ctl"));
    pg_ctl.args(["-D"]).arg(dir.join("data")).args(["-l"]).arg(dir.join("log")).args(args);
    run(pg_ctl, &format!("pg_ctl {}", args.last().unwrap_or(&"")));
}
