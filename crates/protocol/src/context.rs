//! The `context` argument of `execute_action` (SPEC §3), built from a job.

use serde_json::{Map, Value, json};

use crate::job::Job;

/// `args`, `conversation`, `action`, `job`, and `business` / `customer` when the job has them.
pub fn build_context(job: &Job, action_name: &str, attempt: u32) -> Value {
    let mut context = Map::new();
    context.insert("args".into(), Value::Object(job.args.clone()));
    context.insert(
        "conversation".into(),
        job.conversation.clone().map_or(Value::Null, Value::Object),
    );
    context.insert("action".into(), json!({ "name": action_name }));
    context.insert(
        "job".into(),
        json!({ "id": job.id, "attempt": attempt, "test": job.test }),
    );
    if let Some(business) = &job.business {
        context.insert("business".into(), Value::Object(business.clone()));
    }
    if let Some(customer) = &job.customer {
        context.insert("customer".into(), Value::Object(customer.clone()));
    }
    Value::Object(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_has_the_spec_fields() {
        let job: Job = serde_json::from_value(json!({
            "id": "j9", "action": {"name": "getOrder"}, "args": {"orderId": "A1"},
            "business": {"name": "Acme"}, "test": true
        }))
        .unwrap();
        let ctx = build_context(&job, "getOrder", 2);
        assert_eq!(
            ctx,
            json!({"args": {"orderId": "A1"}, "conversation": null, "action": {"name": "getOrder"},
                   "job": {"id": "j9", "attempt": 2, "test": true}, "business": {"name": "Acme"}})
        );
    }
}
