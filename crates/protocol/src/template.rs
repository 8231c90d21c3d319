//! `$variable` templates of API actions (SPEC §2), parsed when a definition is loaded.
//!
//! `$name` and `${name}` (name `[A-Za-z_][A-Za-z0-9_]*`) are variables, `$$` is a `$`, and
//! `{{secrets.NAME}}` is left for the egress layer to resolve at send time. A `$` not followed
//! by a name, `{` or `$` is itself. Any other `{{...}}` and an unterminated `${` are errors,
//! reported with the field and the column.

use crate::error::DefinitionError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template: text and variables in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Template {
    /// Parses `text`; `field` names it in errors (`api.path`).
    pub fn parse(field: &str, text: &str) -> Result<Self, DefinitionError> {
        let chars: Vec<char> = text.chars().collect();
        let mut pieces = vec![];
        let mut literal = String::new();
        let mut i = 0;
        let at =
            |i: usize, msg: &str| DefinitionError::new(field, format!("{msg} at column {}", i + 1));
        while i < chars.len() {
            let c = chars[i];
            if c == '{' && chars.get(i + 1) == Some(&'{') {
                let rest: String = chars[i..].iter().collect();
                let Some(end) = rest.find("}}") else {
                    return Err(at(i, "unterminated {{"));
                };
                let inner = &rest[2..end];
                let ok = inner.strip_prefix("secrets.").is_some_and(|n| {
                    n.chars().next().is_some_and(name_start) && n.chars().all(name_char)
                });
                if !ok {
                    return Err(at(
                        i,
                        &format!(
                            "unknown form {{{{{inner}}}}}: only {{{{secrets.NAME}}}} is allowed"
                        ),
                    ));
                }
                literal.push_str(&rest[..end + 2]);
                i += rest[..end + 2].chars().count();
                continue;
            }
            if c != '$' {
                literal.push(c);
                i += 1;
                continue;
            }
            match chars.get(i + 1) {
                Some('$') => {
                    literal.push('$');
                    i += 2;
                }
                Some('{') => {
                    let mut j = i + 2;
                    while j < chars.len() && chars[j] != '}' {
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err(at(i, "unterminated ${"));
                    }
                    let name: String = chars[i + 2..j].iter().collect();
                    if !name.chars().next().is_some_and(name_start) || !name.chars().all(name_char)
                    {
                        return Err(at(
                            i,
                            &format!("${{{name}}} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(name));
                    i = j + 1;
                }
                Some(&n) if name_start(n) => {
                    let mut j = i + 1;
                    while j < chars.len() && name_char(chars[j]) {
                        j += 1;
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(chars[i + 1..j].iter().collect()));
                    i = j;
                }
                _ => {
                    literal.push('$');
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self { pieces })
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The one variable, when the template is exactly `$x` or `${x}`.
    pub fn sole_var(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Var(name)] => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Piece> {
        Template::parse("f", text).unwrap().pieces
    }

    #[test]
    fn variables_escapes_and_secrets() {
        assert_eq!(
            parse("/orders/$orderId/items/${item}x"),
            vec![
                Piece::Text("/orders/".into()),
                Piece::Var("orderId".into()),
                Piece::Text("/items/".into()),
                Piece::Var("item".into()),
                Piece::Text("x".into())
            ]
        );
        assert_eq!(
            parse("costs $$5 or $5"),
            vec![Piece::Text("costs $5 or $5".into())]
        );
        assert_eq!(
            parse("Bearer {{secrets.API_KEY}}"),
            vec![Piece::Text("Bearer {{secrets.API_KEY}}".into())]
        );
        assert_eq!(Template::parse("f", "$x").unwrap().sole_var(), Some("x"));
        assert_eq!(Template::parse("f", "${x}").unwrap().sole_var(), Some("x"));
        assert_eq!(Template::parse("f", "a$x").unwrap().sole_var(), None);
    }

    #[test]
    fn errors_name_the_field_and_column() {
        let err = Template::parse("api.path", "/orders/${id").unwrap_err();
        assert_eq!(err.to_string(), "api.path: unterminated ${ at column 9");
        let err = Template::parse("api.headers.X", "{{env.HOME}}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("api.headers.X: unknown form {{env.HOME}}"),
            "{err}"
        );
        let err = Template::parse("f", "${9x}").unwrap_err();
        assert!(err.to_string().contains("not a variable name"), "{err}");
        assert!(Template::parse("f", "a {{ b").is_err());
    }
}
