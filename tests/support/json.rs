//! Random JSON for property tests: any value, and objects shaped like the
//! protocol's requests with any values in their fields. Shared by the
//! parser's unit tests (`src/protocol.rs`) and the live fuzz test.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// JSON values of any shape, a few levels deep.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z:_-]{0,12}".prop_map(Value::String),
        ".{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects with a protocol `type` (or any value there) and any of the
/// protocol's fields, holding any values.
pub fn request_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(json!("ping")),
        Just(json!("subscribe")),
        Just(json!("unsubscribe")),
        Just(json!("publish")),
        Just(json!("user_presence")),
        Just(json!("presence")),
        Just(json!("refresh")),
        any_json(),
    ];
    let field = prop_oneof![
        Just("channel"),
        Just("sessionId"),
        Just("data"),
        Just("payload"),
        Just("event"),
        Just("correlationId"),
        Just("token"),
    ];
    (kind, prop::collection::vec((field, any_json()), 0..5)).prop_map(|(kind, fields)| {
        let mut object = Map::new();
        object.insert("type".into(), kind);
        for (name, value) in fields {
            object.insert(name.into(), value);
        }
        Value::Object(object)
    })
}
