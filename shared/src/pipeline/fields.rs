//! Dotted field names over a JSON document: `http.response.status_code` is the key
//! `status_code` of the object `response` of the object `http`. Setting a field creates the
//! objects on its way (replacing a non-object in the way).

use serde_json::{Map, Value};

/// The value at `path`, if there is one.
pub fn get<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    // A literal dotted key (`@timestamp` has none, but decoded JSON may) wins.
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    get(doc.get(head)?.as_object()?, rest)
}

/// The value at `path`, for changing it in place, if there is one (found as [`get`] finds it).
pub fn get_mut<'a>(doc: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    // Asked first, then borrowed: returning a borrow taken on only one path does not pass
    // today's borrow checker.
    if doc.contains_key(path) {
        return doc.get_mut(path);
    }
    let (head, rest) = path.split_once('.')?;
    get_mut(doc.get_mut(head)?.as_object_mut()?, rest)
}

/// Sets `path` to `value`, creating objects on the way.
pub fn set(doc: &mut Map<String, Value>, path: &str, value: Value) {
    // Looked up before anything is inserted: a key is allocated only when it is new.
    let Some((head, rest)) = path.split_once('.') else {
        match doc.get_mut(path) {
            Some(slot) => *slot = value,
            None => {
                doc.insert(path.to_string(), value);
            }
        }
        return;
    };
    if let Some(slot) = doc.get_mut(head) {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(inner) = slot {
            set(inner, rest, value);
        }
        return;
    }
    let mut inner = Map::new();
    set(&mut inner, rest, value);
    doc.insert(head.to_string(), Value::Object(inner));
}

/// Removes `path` and returns what was there; an object left empty goes too.
pub fn remove(doc: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = doc.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let inner = doc.get_mut(head)?.as_object_mut()?;
    let removed = remove(inner, rest);
    if inner.is_empty() {
        doc.remove(head);
    }
    removed
}

/// The text of a field for matching: a string as it is, a number or boolean as JSON.
pub fn text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string().into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_nest() {
        let mut doc = Map::new();
        set(&mut doc, "http.response.status_code", json!(200));
        set(&mut doc, "http.request.method", json!("GET"));
        assert_eq!(
            Value::Object(doc.clone()),
            json!({"http": {"response": {"status_code": 200}, "request": {"method": "GET"}}})
        );
        assert_eq!(get(&doc, "http.request.method"), Some(&json!("GET")));
        assert_eq!(get(&doc, "http.nothing"), None);
        assert_eq!(remove(&mut doc, "http.request.method"), Some(json!("GET")));
        // `request` was left empty: it goes too.
        assert_eq!(
            Value::Object(doc.clone()),
            json!({"http": {"response": {"status_code": 200}}})
        );
        // A literal dotted key is changed in place, as `get` finds it.
        doc.insert("a.b".into(), json!("7"));
        *get_mut(&mut doc, "a.b").unwrap() = json!(7);
        assert_eq!(doc.get("a.b"), Some(&json!(7)));
        assert_eq!(doc.get("a"), None);
        *get_mut(&mut doc, "http.response.status_code").unwrap() = json!(204);
        assert_eq!(get(&doc, "http.response.status_code"), Some(&json!(204)));
        assert_eq!(get_mut(&mut doc, "http.response.nothing"), None);
        doc.remove("a.b");
        // A string in the way is replaced by an object.
        set(&mut doc, "http.response.status_code.x", json!(1));
        assert_eq!(get(&doc, "http.response.status_code.x"), Some(&json!(1)));
    }
}
