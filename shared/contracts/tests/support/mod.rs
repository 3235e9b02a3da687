//! What the schema tests share: reading a schema, validating against it, and the wire
//! form of a value.
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

pub fn schema(rel: &str) -> Value {
    let path = schemas_dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid JSON: {e}"))
}

pub fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("invalid schema {}: {e}", schema["$id"]))
}

pub fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn assert_valid(rel: &str, instance: &Value) {
    let errs = errors(&validator(&schema(rel)), instance);
    assert!(
        errs.is_empty(),
        "{rel} rejects {instance:#}:\n{}",
        errs.join("\n")
    );
}

pub fn assert_invalid(rel: &str, instance: &Value) {
    assert!(
        !validator(&schema(rel)).is_valid(instance),
        "{rel} accepts {instance:#}"
    );
}

/// What a consumer in any language sees: the named MessagePack map, read generically.
pub fn wire<T: Serialize>(value: &T) -> Value {
    let bytes = rmp_serde::to_vec_named(value).expect("encode");
    rmp_serde::from_slice(&bytes).expect("decode as a generic value")
}

/// Each `examples` entry validates, decodes into `T` from MessagePack, and encodes back
/// to the same JSON (nothing dropped, nothing renamed).
pub fn examples_round_trip<T: Serialize + DeserializeOwned>(rel: &str) -> usize {
    let schema = schema(rel);
    let examples = schema["examples"]
        .as_array()
        .unwrap_or_else(|| panic!("{rel} has no examples"))
        .clone();
    assert!(!examples.is_empty(), "{rel} has no examples");
    for example in &examples {
        assert_valid(rel, example);
        let bytes = rmp_serde::to_vec_named(example).expect("encode example");
        let typed: T = rmp_serde::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{rel} example does not decode: {e}\n{example:#}"));
        assert_eq!(
            &wire(&typed),
            example,
            "{rel} example changes in a round trip"
        );
    }
    examples.len()
}
