//! The sidecar sizes its runtime from the CPUs it may use, not the node's: a CPU quota on
//! its cgroup (what a pod's `limits.cpu` becomes) or an affinity mask of one CPU gives it
//! one thread, a current-thread runtime, exactly as `--threads 1` does. Read from
//! `warden_worker_threads` on the admin port; the workers beyond the first are threads of
//! their own (`warden-worker-N`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use warden_e2e::{Client, Sidecar, write_policy};

/// The process's threads that serve connections besides its main one.
fn extra_workers(s: &Sidecar) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.proc.pid())).unwrap();
    let mut names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("warden-worker-"))
        .collect();
    names.sort();
    names
}

async fn worker_threads(s: &Sidecar) -> u64 {
    let metrics = Client::default().get(&s.admin_url("/metrics")).await.unwrap().text();
    let line = metrics.lines().find(|l| l.starts_with("warden_worker_threads ")).expect("the gauge");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A cgroup with a CPU quota of half a CPU (`limits.cpu: 500m`), v2 or v1, whichever this
/// machine mounts writable; removed on drop.
struct HalfCpu(std::path::PathBuf);

impl HalfCpu {
    fn create() -> HalfCpu {
        let name = format!("warden-test-{}", std::process::id());
        let v2 = std::path::Path::new("/sys/fs/cgroup/unified");
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
        let v2_root = std::path::Path::new("/sys/fs/cgroup");
        for (root, file, value) in
            [(v2_root, "cpu.max", "50000 100000"), (v2, "cpu.max", "50000 100000"), (v1, "cpu.cfs_quota_us", "50000")]
        {
            // Only a cgroup file system's directory (not the tmpfs they are mounted on).
            if !root.join("cgroup.procs").exists() {
                continue;
            }
            let dir = root.join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                if std::fs::write(dir.join(file), value).is_ok() {
                    return HalfCpu(dir);
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        panic!("no writable CPU controller under /sys/fs/cgroup to put a quota on (run as root, as .ci/run does)");
    }

    fn procs(&self) -> String {
        self.0.join("cgroup.procs").display().to_string()
    }
}

impl Drop for HalfCpu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_is_sized_by_the_cpus_the_process_may_use() {
    let here = std::thread::available_parallelism().unwrap().get() as u64;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "p.yaml", "service: s\nroutes:\n  - { name: a, match: { path_prefix: / } }\n");
    let args = ["--policy-file", file.as_str(), "--upstream", "127.0.0.1:1"];
    let free = Sidecar::start(&args).await;
    assert_eq!(worker_threads(&free).await, here, "without a limit: one worker per CPU it may use");
    let flag = Sidecar::start(&[&args[..], &["--threads", "3"]].concat()).await;
    assert_eq!(worker_threads(&flag).await, 3, "--threads wins");
    assert_eq!(extra_workers(&flag), ["warden-worker-1", "warden-worker-2"]);

    let pinned = Sidecar::start_wrapped(&["taskset", "-c", "0"], &args).await;
    assert_eq!(worker_threads(&pinned).await, 1, "an affinity of one CPU");
    assert!(extra_workers(&pinned).is_empty(), "one worker: the main thread's");

    let group = HalfCpu::create();
    let script = format!("echo $$ > {} && exec \"$0\" \"$@\"", group.procs());
    let mut quota = Sidecar::start_wrapped(&["sh", "-c", &script], &args).await;
    assert_eq!(worker_threads(&quota).await, 1, "a 500m CPU quota: one thread, as --threads 1");
    quota.proc.kill9();
    let _ = quota.proc.wait_exit(std::time::Duration::from_secs(5)).await;
}
