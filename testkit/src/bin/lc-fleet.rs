//! `lc-fleet`: N simulated agents against a real etcd, for the control plane's scale figures.
//!
//! `lc-fleet ETCD_URL N SECONDS` gives each simulated agent what a real one keeps in etcd: a
//! lease (30 s, refreshed every 10 s), a status key under it (a realistic value: 10 files)
//! rewritten every 10 s, and a watch of `collect_log_conf`. After SECONDS of that it puts the
//! key 20 times, 1 s apart, and measures how long each change takes to reach every watcher.
//! Prints one JSON object: delivery p50/p99 (ms) over all watchers and puts, and the p99 over
//! puts of the time until the last watcher had it. The leases are revoked at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logcollect::etcd::watch::Message;
use logcollect::etcd::EtcdClient;
use logcollect::fleet::{status_key, FileReport, Status, LEASE_TTL, REFRESH};
use logcollect::settings::EtcdSettings;
use serde_json::json;

const KEY: &str = "collect_log_conf";
const PUTS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, n, secs] = &args[..] else {
        eprintln!("usage: lc-fleet ETCD_URL N SECONDS");
        std::process::exit(2);
    };
    let (n, secs): (usize, u64) = match (n.parse(), secs.parse()) {
        (Ok(n), Ok(s)) => (n, s),
        _ => {
            eprintln!("lc-fleet: N and SECONDS are numbers");
            std::process::exit(2);
        }
    };
    let client = Arc::new(EtcdClient::new(&EtcdSettings::with_endpoints(vec![
        url.clone()
    ])));
    let (_, start_rev) = client.get_at(KEY).expect("etcd answers");

    // Watchers: each records when it saw each revision.
    let seen: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let ready = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let (client, seen, ready) = (client.clone(), seen.clone(), ready.clone());
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .name(format!("watch-{i}"))
            .spawn(move || {
                let mut stream = client.watch(KEY, start_rev + 1).expect("watch");
                while let Ok(m) = stream.next_message() {
                    match m {
                        Message::Created => {
                            ready.fetch_add(1, Ordering::SeqCst);
                        }
                        Message::Progress { revision, events } if events > 0 => {
                            seen.lock().unwrap().push((revision, Instant::now()));
                        }
                        _ => {}
                    }
                }
            })
            .expect("thread");
    }
    while ready.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_millis(50));
    }

    // Heartbeats: a lease and a status per agent, kept by 8 threads.
    let leases: Vec<i64> = (0..n)
        .map(|_| client.grant(LEASE_TTL).expect("grant"))
        .collect();
    let value_bytes = serde_json::to_vec(&sample_status("sim-00000")).map_or(0, |v| v.len());
    let deadline =
        Instant::now() + Duration::from_secs(secs) + Duration::from_secs(PUTS as u64 + 2);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let mine: Vec<(usize, i64)> = leases
                .iter()
                .copied()
                .enumerate()
                .filter(|(i, _)| i % 8 == w)
                .collect();
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let round = Instant::now();
                    for (i, lease) in &mine {
                        let name = format!("sim-{i:05}");
                        let key = status_key("agent", &name);
                        let value = serde_json::to_vec(&sample_status(&name)).unwrap_or_default();
                        let _ = client.keep_alive(*lease);
                        let _ = client.put_all(&[(&key, &value, Some(*lease))]);
                    }
                    std::thread::sleep(REFRESH.saturating_sub(round.elapsed()));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));

    // Puts: how long until each watcher, and the last one, has each.
    let mut puts = Vec::new();
    for i in 0..PUTS {
        let t0 = Instant::now();
        let rev = client
            .put(
                KEY,
                json!([{ "path": format!("/var/log/sim{i}.log"), "topic": "sim" }])
                    .to_string()
                    .as_bytes(),
            )
            .expect("put");
        puts.push((rev, t0));
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    let seen = seen.lock().unwrap().clone();
    let mut each = Vec::new();
    let mut all = Vec::new();
    for (rev, t0) in &puts {
        let d: Vec<f64> = seen
            .iter()
            .filter(|(r, _)| r == rev)
            .map(|(_, t)| t.duration_since(*t0).as_secs_f64() * 1000.0)
            .collect();
        if d.len() == n {
            all.push(d.iter().cloned().fold(0.0, f64::max));
        }
        each.extend(d);
    }
    for w in workers {
        let _ = w.join();
    }
    for lease in leases {
        let _ = client.revoke(lease);
    }
    println!(
        "{}",
        json!({
            "agents": n,
            "puts": PUTS,
            "puts_seen_by_all": all.len(),
            "delivery_ms_p50": percentile(&mut each, 0.50),
            "delivery_ms_p99": percentile(&mut each, 0.99),
            "all_watchers_ms_p99": percentile(&mut all, 0.99),
            "status_value_bytes": value_bytes,
        })
    );
}

/// The `q` quantile (nearest rank) of `v`.
fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    (v[i] * 10.0).round() / 10.0
}

/// A typical agent's status: 10 files, some behind.
fn sample_status(name: &str) -> Status {
    let files = (0..10)
        .map(|i| FileReport {
            path: format!("/var/log/app/service-{i}.log"),
            topic: "app_log".into(),
            acked_offset: 123_456_789,
            size: 123_456_789 + i * 100,
            bytes_behind: i * 100,
            last_ack_at: Some("2026-11-28T17:00:00.000Z".into()),
        })
        .collect();
    Status {
        kind: "agent".into(),
        name: name.into(),
        version: "0.1.0".into(),
        started_at: "2026-11-28T17:00:00.000Z".into(),
        updated_at: "2026-11-28T17:00:10.000Z".into(),
        files,
        files_total: 10,
        bytes_behind: 4500,
        ..Status::default()
    }
}
