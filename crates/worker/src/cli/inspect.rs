//! `action-worker inspect ACTION`: what an LLM is told about an action.

use std::path::PathBuf;
use std::process::ExitCode;

use action_protocol::{ActionDefinition, load_action};
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The action: a `name.py`, or a `.toml` / `.json` definition.
    action: PathBuf,
}

/// The arguments an action declares, in order, with their JSON Schema and whether required.
fn arguments(action: &ActionDefinition) -> Vec<(String, Value, bool)> {
    action
        .parameters
        .iter()
        .map(|(name, spec)| {
            let mut schema = Map::new();
            schema.insert(
                "type".into(),
                json!(spec.kind.as_deref().unwrap_or("string")),
            );
            if let Some(description) = &spec.description {
                schema.insert("description".into(), json!(description));
            }
            (
                name.clone(),
                Value::Object(schema),
                spec.required.unwrap_or(true),
            )
        })
        .collect()
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
}
