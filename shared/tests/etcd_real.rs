//! The etcd client against a real etcd. Run by `tests/etcd.sh`, which starts the server and
//! sets `LC_ETCD_URL` (and `LC_ETCD_AUTH_URL`, `LC_SERVICES` for the auth and outage tests):
//! `cargo test -p logcollect-shared --test etcd_real -- --ignored`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logcollect::etcd::{EtcdClient, KeyChange, Poller};
use logcollect::settings::{EtcdSettings, IniFile};
use logcollect::shutdown::Shutdown;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run tests/etcd.sh"))
}

fn client(endpoints: &str, auth: Option<(&str, &str)>) -> EtcdClient {
    let mut ini = format!("[etcd]\nendpoints = {endpoints}\n");
    if let Some((u, p)) = auth {
        ini.push_str(&format!("username = {u}\npassword = {p}\n"));
    }
    let ini = IniFile::parse("test.ini", &ini).unwrap();
    EtcdClient::new(&EtcdSettings::from_ini(&ini).unwrap())
}

/// A key no other test uses.
fn key(name: &str) -> String {
    format!("test/{}/{name}", std::process::id())
}

#[test]
#[ignore = "needs a real etcd: tests/etcd.sh"]
fn put_get_delete() {
    let c = client(&env("LC_ETCD_URL"), None);
    let k = key("roundtrip");
    assert_eq!(c.get(&k).unwrap(), None);
    let rev1 = c.put(&k, b"[\"one\"]").unwrap();
    let kv = c.get(&k).unwrap().unwrap();
    assert_eq!(
        (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision),
        (k.as_str(), &b"[\"one\"]"[..], rev1)
    );
    // Non-UTF-8 and empty values survive the base64 round trip.
    let rev2 = c.put(&k, &[0xff, 0x00, 0x80]).unwrap();
    assert!(rev2 > rev1);
    assert_eq!(c.get(&k).unwrap().unwrap().value, [0xff, 0x00, 0x80]);
    c.put(&k, b"").unwrap();
    assert_eq!(c.get(&k).unwrap().unwrap().value, b"");
    assert!(c.delete(&k).unwrap());
    assert!(!c.delete(&k).unwrap());
    assert_eq!(c.get(&k).unwrap(), None);
}

#[test]
#[ignore = "needs a real etcd: tests/etcd.sh"]
fn fails_over_to_the_next_endpoint() {
    let live = env("LC_ETCD_URL");
    // Port 9 (discard) on loopback refuses connections.
    let c = client(&format!("http://127.0.0.1:9,{live}"), None);
    let k = key("failover");
    c.put(&k, b"x").unwrap();
    assert_eq!(c.endpoint(), live);
    assert_eq!(c.get(&k).unwrap().unwrap().value, b"x");

    let dead = client("http://127.0.0.1:9", None);
    let e = dead.get(&k).unwrap_err().to_string();
    assert!(e.starts_with("etcd http://127.0.0.1:9 (key \"test/"), "{e}");
}

#[test]
#[ignore = "needs a real etcd: tests/etcd.sh"]
fn poller_reports_only_changes() {
    let c = Arc::new(client(&env("LC_ETCD_URL"), None));
    let (a, b) = (key("poll-a"), key("poll-b"));
    c.put(&a, b"1").unwrap();
    let mut p = Poller::new(c.clone(), vec![a.clone(), b.clone()]);
    // The first poll reports every key, present or not.
    let first = p.poll().unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].value.as_ref().unwrap().value, b"1");
    assert_eq!(
        first[1],
        KeyChange {
            key: b.clone(),
            value: None
        }
    );
    assert_eq!(p.poll().unwrap(), []);
    // Putting the same value is a change (new mod_revision).
    let rev = c.put(&a, b"1").unwrap();
    let changed = p.poll().unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].value.as_ref().unwrap().mod_revision, rev);
    c.put(&b, b"2").unwrap();
    c.delete(&a).unwrap();
    let changed = p.poll().unwrap();
    assert_eq!(changed.len(), 2);
    assert_eq!(
        changed[0],
        KeyChange {
            key: a.clone(),
            value: None
        }
    );
    assert_eq!(changed[1].value.as_ref().unwrap().value, b"2");
    assert_eq!(p.poll().unwrap(), []);
}

/// Stops and starts the test's etcd through the project's script.
fn services(cmd: &str) {
    let status = std::process::Command::new(env("LC_SERVICES"))
        .args([cmd, "etcd"])
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {cmd} etcd failed");
}

#[test]
#[ignore = "needs a real etcd: tests/etcd.sh"]
fn poller_survives_an_outage() {
    let c = Arc::new(client(&env("LC_ETCD_URL"), None));
    let k = key("outage");
    c.put(&k, b"before").unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let (tx, rx) = crossbeam_channel::unbounded();
    let poller = Poller::new(c.clone(), vec![k.clone()]);
    let thread = std::thread::spawn(move || poller.run(Duration::from_millis(100), tx, &shutdown));
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first.value.unwrap().value, b"before");

    services("stop");
    std::thread::sleep(Duration::from_millis(1500));
    // Failed polls report nothing: the last value stays in force.
    assert!(rx.try_recv().is_err());
    services("start");
    let rev = c.put(&k, b"after").unwrap();
    // Back-off is at most 30 s; after 1.5 s of outage it is below 2 s.
    let start = Instant::now();
    let change = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let kv = change.value.unwrap();
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"after"[..], rev));
    assert!(start.elapsed() < Duration::from_secs(10));
    trigger.trigger();
    thread.join().unwrap();
}

#[test]
#[ignore = "needs a real etcd with auth enabled: tests/etcd.sh"]
fn authentication() {
    let url = env("LC_ETCD_AUTH_URL");
    let k = key("auth");
    let good = client(&url, Some(("root", "rootpw")));
    good.put(&k, b"secret").unwrap();
    assert_eq!(good.get(&k).unwrap().unwrap().value, b"secret");

    let anonymous = client(&url, None);
    let e = anonymous.get(&k).unwrap_err().to_string();
    assert!(
        e.ends_with("etcd requires authentication: set [etcd] username and password"),
        "{e}"
    );

    let wrong = client(&url, Some(("root", "nope")));
    let e = wrong.get(&k).unwrap_err().to_string();
    assert!(
        e.contains("authentication as \"root\" failed") || e.contains("authentication failed"),
        "{e}"
    );
    assert!(!e.contains("nope"), "the password leaked into: {e}");
}
