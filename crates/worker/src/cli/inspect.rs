//! `action-worker inspect ACTION`: what an LLM is told about an action.

use std::path::PathBuf;
use std::process::ExitCode;

use action_protocol::{ActionDefinition, load_action, required_arguments};
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The action: a `name.py`, or a `.toml` / `.json` definition.
    action: PathBuf,
}

/// The arguments of an action, in order, with their JSON Schema and whether required: for an
/// API action its `$variables` (always required) then any other declared `parameters`; for a
/// Python action its `parameters`. Types and descriptions come from `parameters` where given.
fn arguments(action: &ActionDefinition) -> Vec<(String, Value, bool)> {
    let schema = |name: &str| {
        let spec = action.parameters.get(name);
        let mut schema = Map::new();
        let kind = spec.and_then(|s| s.kind.as_deref()).unwrap_or("string");
        schema.insert("type".into(), json!(kind));
        if let Some(description) = spec.and_then(|s| s.description.as_ref()) {
            schema.insert("description".into(), json!(description));
        }
        Value::Object(schema)
    };
    let mut out: Vec<(String, Value, bool)> = match &action.api {
        Some(api) => required_arguments(api)
            .into_iter()
            .map(|n| (n.clone(), schema(&n), true))
            .collect(),
        None => vec![],
    };
    for (name, spec) in &action.parameters {
        if !out.iter().any(|(n, _, _)| n == name) {
            out.push((name.clone(), schema(name), spec.required.unwrap_or(true)));
        }
    }
    out
}

/// The tool definition of OpenAI-style function calling.
pub fn tool_definition(action: &ActionDefinition) -> Value {
    let args = arguments(action);
    let properties: Map<String, Value> = args
        .iter()
        .map(|(n, s, _)| (n.clone(), s.clone()))
        .collect();
    let required: Vec<&str> = args.iter().filter(|a| a.2).map(|a| a.0.as_str()).collect();
    json!({
        "type": "function",
        "function": {
            "name": action.name,
            "description": action.description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            }
        }
    })
}

pub fn main(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let action = load_action(&args.action)?;
    let required: Vec<String> = arguments(&action)
        .into_iter()
        .filter(|a| a.2)
        .map(|a| a.0)
        .collect();
    let report = json!({
        "name": action.name,
        "description": action.description,
        "type": action.kind,
        "required_arguments": required,
        "tool": tool_definition(&action),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_parameters_become_the_tool_schema() {
        let action: ActionDefinition = serde_json::from_value(json!({
            "name": "processRefund", "description": "Refunds an order.", "type": "python",
            "python": {"code": "x"},
            "parameters": {"orderId": {"type": "string", "description": "The order"},
                           "amount": {"type": "number"},
                           "note": {"required": false}}
        }))
        .unwrap();
        let tool = tool_definition(&action);
        assert_eq!(tool["function"]["name"], "processRefund");
        let params = &tool["function"]["parameters"];
        assert_eq!(params["required"], json!(["orderId", "amount"]));
        assert_eq!(params["properties"]["amount"]["type"], "number");
        assert_eq!(params["properties"]["note"]["type"], "string");
        assert_eq!(params["properties"]["orderId"]["description"], "The order");
        assert_eq!(params["additionalProperties"], false);
    }

    #[test]
    fn api_variables_are_required_and_typed_by_parameters() {
        let action: ActionDefinition = serde_json::from_value(json!({
            "name": "checkProductStock", "description": "Stock.", "type": "api",
            "api": {"base_url": "https://api.example.com", "path": "/stock/$productId", "query": {"qty": "$qty"}},
            "parameters": {"qty": {"type": "integer", "description": "How many"}, "store": {"required": false}}
        }))
        .unwrap();
        let params = &tool_definition(&action)["function"]["parameters"];
        assert_eq!(params["required"], json!(["productId", "qty"]));
        assert_eq!(params["properties"]["productId"]["type"], "string");
        assert_eq!(
            params["properties"]["qty"],
            json!({"type": "integer", "description": "How many"})
        );
        assert_eq!(params["properties"]["store"]["type"], "string");
    }
}
