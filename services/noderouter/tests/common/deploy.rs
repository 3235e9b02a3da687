//! Helpers of the deploy tests: a `main.py` answering its version number, admin API
//! requests, and the rules a refusal or a report names.

use reqwest::StatusCode;
use serde_json::Value;

use super::Harness;

pub fn main_v(n: u32) -> String {
    format!("def execute(data, conn=None):\n    return {{\"v\": {n}}}\n")
}

pub async fn get(h: &Harness, path: &str) -> (StatusCode, Value) {
    let res = h.http.get(format!("{}{path}", h.url)).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn post_json(h: &Harness, path: &str, body: Value) -> (StatusCode, Value) {
    let res = h
        .http
        .post(format!("{}{path}", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn delete(h: &Harness, path: &str) -> (StatusCode, Value) {
    let res = h
        .http
        .delete(format!("{}{path}", h.url))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub fn rules_of(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .or_else(|| body["warnings"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d["rule"].as_str().map(str::to_owned))
        .collect()
}
