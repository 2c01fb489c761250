//! The console's configuration page: a key's value to edit (secrets masked), its check by the
//! daemons' own validation with the diff against etcd, and its compare-and-swap save, which
//! the caller allows only with the admin token.

use logcollect::etcd::Swap;
use logcollect::{Error, Result};
use serde_json::{json, Value};

use crate::config_cmd::{self, diff, pretty};
use crate::target::Target;

/// What stands for a secret in the page; saved back, it keeps the secret in etcd.
const MASK: &str = "********";

/// The fields of `elasticsearch_config` that are secrets.
const SECRETS: [&str; 2] = ["password", "api_key"];

/// The key a request names: `es=1` for `elasticsearch_config`, else the collect configuration
/// of `host` (none: the global one).
pub fn key(target: &Target, host: Option<&str>, es: bool) -> String {
    config_cmd::key_for(target, host, es)
}

/// `GET /api/config`: the value of `key` as the editor shows it, and the revision a save is
/// based on. A host without a value of its own is shown the global one, in force for it.
pub fn get(target: &Target, key: &str, es: bool) -> Result<Value> {
    let own = target.etcd.get(key)?;
    let (shown, note) = match (&own, es) {
        (Some(kv), _) => (Some(kv.clone()), None),
        (None, false) if key != target.collect_key(None) => {
            let global = target.etcd.get(&target.collect_key(None))?;
            let note = format!(
                "{key} has no value: {} is in force for this host; a save writes {key}",
                target.collect_key(None)
            );
            (global, Some(note))
        }
        (None, _) => (None, None),
    };
    let text = shown.as_ref().map_or_else(
        || if es { "{}".into() } else { "[]".into() },
        |kv| {
            if es {
                masked(&kv.value)
            } else {
                pretty(&kv.value)
            }
        },
    );
    Ok(json!({
        "key": key,
        "mod_revision": own.map_or(0, |kv| kv.mod_revision),
        "value": text,
        "note": note,
    }))
}

/// `POST /api/config/check`: whether `value` is valid for `key` (the daemons' message and the
/// entry it is about if not), and what a save would change.
pub fn check(target: &Target, key: &str, es: bool, value: &str) -> Result<Value> {
    let value = unmasked(target, key, es, value)?;
    match config_cmd::validate(target, key, &value) {
        Ok(()) => {
            let current = target.etcd.get(key)?;
            Ok(json!({ "valid": true, "diff": masked_diff(key, current.as_ref(), &value, es) }))
        }
        Err(e) => {
            let message = e.to_string();
            Ok(json!({ "valid": false, "error": message, "entry": entry_of(&message) }))
        }
    }
}

/// `POST /api/config` (with the admin token): `value` written to `key` if it is valid and
/// the key is still at revision `base`; on a conflict, what is there now.
pub fn save(target: &Target, key: &str, es: bool, value: &str, base: i64) -> Result<Value> {
    let value = unmasked(target, key, es, value)?;
    config_cmd::validate(target, key, &value)?;
    match target.etcd.put_if(key, &value, base)? {
        Swap::Done(revision) => Ok(json!({ "saved": true, "key": key, "mod_revision": revision })),
        Swap::Conflict(now) => Ok(json!({
            "saved": false,
            "error": format!(
                "conflict: {key} changed since revision {base} (it is at revision {}); nothing written",
                now.as_ref().map_or(0, |kv| kv.mod_revision)
            ),
            "diff": masked_diff(key, now.as_ref(), &value, es),
        })),
    }
}

/// `elasticsearch_config` for the page: pretty, its secrets replaced by [`MASK`].
fn masked(value: &[u8]) -> String {
    match serde_json::from_slice::<Value>(value) {
        Ok(mut v) => {
            for field in SECRETS {
                if v.get(field).is_some_and(|s| !s.is_null()) {
                    v[field] = json!(MASK);
                }
            }
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}

/// The value to write: for `elasticsearch_config`, a secret left as [`MASK`] is the one in
/// etcd.
fn unmasked(target: &Target, key: &str, es: bool, value: &str) -> Result<Vec<u8>> {
    if !es {
        return Ok(value.as_bytes().to_vec());
    }
    let Ok(mut v) = serde_json::from_str::<Value>(value) else {
        return Ok(value.as_bytes().to_vec()); // the validation says what is wrong
    };
    let current: Value = target
        .etcd
        .get(key)?
        .and_then(|kv| serde_json::from_slice(&kv.value).ok())
        .unwrap_or(Value::Null);
    for field in SECRETS {
        if v.get(field).and_then(Value::as_str) == Some(MASK) {
            v[field] = current.get(field).cloned().ok_or_else(|| Error::Invalid {
                key: key.into(),
                msg: format!("{field} is {MASK}, but there is no {field} in etcd to keep"),
            })?;
        }
    }
    Ok(v.to_string().into_bytes())
}

/// The diff of a save, secrets masked on both sides.
fn masked_diff(
    key: &str,
    current: Option<&logcollect::etcd::KeyValue>,
    value: &[u8],
    es: bool,
) -> String {
    if !es {
        return diff(key, current, value);
    }
    let hide = |v: &[u8]| masked(v).into_bytes();
    let current = current.map(|kv| logcollect::etcd::KeyValue {
        value: hide(&kv.value),
        ..kv.clone()
    });
    diff(key, current.as_ref(), &hide(value))
}

/// The entry a validation message is about (`entry 2 (...)`), counted from 0.
fn entry_of(message: &str) -> Option<usize> {
    let rest = message.split("entry ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_entries_found() {
        let es =
            br#"{"url_address":["https://es:9200"],"username":"elastic","password":"hunter2"}"#;
        let shown = masked(es);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"password\": \"********\""), "{shown}");
        assert_eq!(
            entry_of("etcd key \"collect_log_conf\": entry 2 (/var/log/a.log): topic \"a b\": invalid character ' '"),
            Some(2)
        );
        assert_eq!(entry_of("etcd key \"k\": not valid JSON"), None);
    }
}
