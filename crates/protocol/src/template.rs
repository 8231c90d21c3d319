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

/// The pieces parsed so far, and the text not yet made a piece.
#[derive(Default)]
struct Pieces {
    pieces: Vec<Piece>,
    literal: String,
}

impl Pieces {
    fn var(&mut self, name: String) {
        if !self.literal.is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.literal)));
        }
        self.pieces.push(Piece::Var(name));
    }

    fn finish(mut self) -> Vec<Piece> {
        if !self.literal.is_empty() {
            self.pieces.push(Piece::Text(self.literal));
        }
        self.pieces
    }
}

/// An error of `field` at character `i` (shown from column 1).
fn at(field: &str, i: usize, msg: &str) -> DefinitionError {
    DefinitionError::new(field, format!("{msg} at column {}", i + 1))
}

/// The `{{secrets.NAME}}` at `i`, kept as text for the egress layer; the index after it.
/// Any other `{{...}}` is an error.
fn secret_reference(
    field: &str,
    chars: &[char],
    i: usize,
    literal: &mut String,
) -> Result<usize, DefinitionError> {
    let rest: String = chars[i..].iter().collect();
    let Some(end) = rest.find("}}") else {
        return Err(at(field, i, "unterminated {{"));
    };
    let inner = &rest[2..end];
    let ok = inner
        .strip_prefix("secrets.")
        .is_some_and(|n| n.chars().next().is_some_and(name_start) && n.chars().all(name_char));
    if !ok {
        let msg = format!("unknown form {{{{{inner}}}}}: only {{{{secrets.NAME}}}} is allowed");
        return Err(at(field, i, &msg));
    }
    literal.push_str(&rest[..end + 2]);
    Ok(i + rest[..end + 2].chars().count())
}

/// The `$` at `i` (followed by `next`): `$$`, `${name}`, `$name`, or a `$` that is itself;
/// the index after it.
fn dollar(
    field: &str,
    chars: &[char],
    i: usize,
    next: Option<char>,
    out: &mut Pieces,
) -> Result<usize, DefinitionError> {
    match next {
        Some('$') => {
            out.literal.push('$');
            Ok(i + 2)
        }
        Some('{') => {
            let Some(len) = chars[i + 2..].iter().position(|&c| c == '}') else {
                return Err(at(field, i, "unterminated ${"));
            };
            let j = i + 2 + len;
            let name: String = chars[i + 2..j].iter().collect();
            if !name.chars().next().is_some_and(name_start) || !name.chars().all(name_char) {
                let msg = format!("${{{name}}} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
                return Err(at(field, i, &msg));
            }
            out.var(name);
            Ok(j + 1)
        }
        Some(n) if name_start(n) => {
            let len = chars[i + 1..].iter().take_while(|&&c| name_char(c)).count();
            out.var(chars[i + 1..i + 1 + len].iter().collect());
            Ok(i + 1 + len)
        }
        _ => {
            out.literal.push('$');
            Ok(i + 1)
        }
    }
}

impl Template {
    /// Parses `text`; `field` names it in errors (`api.path`).
    pub fn parse(field: &str, text: &str) -> Result<Self, DefinitionError> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Pieces::default();
        let mut i = 0;
        while i < chars.len() {
            i = match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) => secret_reference(field, &chars, i, &mut out.literal)?,
                ('$', next) => dollar(field, &chars, i, next.copied(), &mut out)?,
                (c, _) => {
                    out.literal.push(c);
                    i + 1
                }
            };
        }
        Ok(Self {
            pieces: out.finish(),
        })
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
