//! Label and field selectors, with the Kubernetes apiserver's semantics.
//!
//! * [`LabelSelector`] is `k8s.io/apimachinery/pkg/labels`: the `labelSelector` query parameter
//!   grammar (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>3`, `a<3`), its key and
//!   value validation and error messages, its canonical string form, and the
//!   `metav1.LabelSelector` object form (`matchLabels` / `matchExpressions`) as converted by
//!   `metav1.LabelSelectorAsSelector` and validated by `metav1validation.ValidateLabelSelector`.
//! * [`FieldSelector`] is `k8s.io/apimachinery/pkg/fields`: `field=value`, `field==value`,
//!   `field!=value`, comma separated, with `\,` `\=` `\\` escapes in values.
//! * [`FieldSelector::transform_for`] is the apiserver's per-kind field label conversion
//!   (`Scheme.ConvertFieldLabel`, the `AddFieldLabelConversionFunc`s of
//!   `k8s.io/kubernetes/pkg/apis/*/*/conversion.go`), which rejects unsupported fields with the
//!   same 400 message as Kubernetes, and [`field_value`] computes a field's value the way the
//!   registry strategies' `ToSelectableFields` do.
//!
//! Messages follow Kubernetes 1.33.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{ApiError, Cause, Result};

// ---------------------------------------------------------------------------------------------
// Validation of label keys and values (k8s.io/apimachinery/pkg/util/validation).
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and \
                                  must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
                               characters, '-', '_' or '.', and must start and end with an \
                               alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
                                     alphanumeric characters, '-' or '.', and must start and end \
                                     with an alphanumeric character";
const MAX_NAME_LENGTH: usize = 63;
const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// `validation.RegexError`: the message, the examples and the regular expression.
fn regex_error(msg: &str, format: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{format}')"));
    out
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`.
fn is_dns1123_subdomain_format(s: &str) -> bool {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                lower_alnum(first)
                    && lower_alnum(last)
                    && b.iter().all(|c| lower_alnum(c) || *c == b'-')
            }
            _ => false,
        }
    })
}

fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_SUBDOMAIN_LENGTH {
        errs.push(max_len_error(MAX_SUBDOMAIN_LENGTH));
    }
    if !is_dns1123_subdomain_format(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `validation.IsQualifiedName`: the messages for an invalid label key (empty when valid).
pub fn label_key_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > MAX_NAME_LENGTH {
        errs.push(format!("name part {}", max_len_error(MAX_NAME_LENGTH)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`: the messages for an invalid label value (empty when valid).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_NAME_LENGTH {
        errs.push(max_len_error(MAX_NAME_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Go's `strconv.Quote` (what `%q` prints), for error messages.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `field.Error` of type Invalid, as `Error()` prints it: `<path>: Invalid value: <v>: <detail>`.
fn invalid_error(path: &str, value: &InvalidValue, detail: &str) -> String {
    let shown = match value {
        InvalidValue::Str(s) => go_quote(s),
        InvalidValue::List(Some(list)) => Value::from(list.clone()).to_string(),
        InvalidValue::List(None) => "null".to_string(),
    };
    format!("{path}: Invalid value: {shown}: {detail}")
}

/// The bad value of a field error: a string, or a (possibly nil) list of strings.
enum InvalidValue {
    Str(String),
    List(Option<Vec<String>>),
}

/// `utilerrors.NewAggregate(...).Error()`: one message as is, several de-duplicated in `[...]`.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors.
// ---------------------------------------------------------------------------------------------

/// A label selector operator (`selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// `in (...)`
    In,
    /// `notin (...)`
    NotIn,
    /// `key` alone.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `>` (`gt`).
    GreaterThan,
    /// `<` (`lt`).
    LessThan,
}

/// One requirement of a label selector: a key, an operator and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement` (with no field path): validates the key, the number of values
    /// for the operator, integer values for `Gt`/`Lt`, and each value as a label value.
    /// The error is Kubernetes' aggregated message.
    fn new(key: &str, operator: Operator, values: Option<Vec<String>>) -> Result<Self, String> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid_error(
                "key",
                &InvalidValue::Str(key.to_string()),
                &key_errs.join("; "),
            ));
        }
        let len = values.as_ref().map_or(0, Vec::len);
        let list = || InvalidValue::List(values.clone());
        match operator {
            Operator::In | Operator::NotIn => {
                if len == 0 {
                    errs.push(invalid_error(
                        "values",
                        &list(),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if len != 1 {
                    errs.push(invalid_error(
                        "values",
                        &list(),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if len != 0 {
                    errs.push(invalid_error(
                        "values",
                        &list(),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if len != 1 {
                    errs.push(invalid_error(
                        "values",
                        &list(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().flatten().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid_error(
                            &format!("values[{i}]"),
                            &InvalidValue::Str(v.clone()),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().flatten().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(invalid_error(
                    &format!("values[{i}][{key}]"),
                    &InvalidValue::Str(v.clone()),
                    &value_errs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(message) => Err(message),
            None => Ok(Requirement {
                key: key.to_string(),
                operator,
                values: values.unwrap_or_default(),
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (none for `Exists`/`DoesNotExist`, one for the exact-match operators).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut values = self.values.clone();
        values.sort();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// `labels.Nothing()`: what a null `metav1.LabelSelector` converts to.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter like `labels.Parse`. Errors are 400
    /// BadRequest with Kubernetes' messages.
    pub fn parse(s: &str) -> Result<LabelSelector> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse().map_err(ApiError::bad_request)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` object (`{matchLabels, matchExpressions}`) like
    /// `metav1.LabelSelectorAsSelector`: `null` selects nothing, `{}` selects everything, and an
    /// invalid requirement is a 400 BadRequest with Kubernetes' message. Use
    /// [`LabelSelector::validate_object`] first where Kubernetes validates the field (422).
    pub fn from_object(v: &Value) -> Result<LabelSelector> {
        let selector = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            other => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go value of type v1.LabelSelector",
                    json_type(other)
                )))
            }
        };
        let match_labels = object_match_labels(selector)?;
        let expressions = object_match_expressions(selector)?;
        if match_labels.is_empty() && expressions.is_empty() {
            return Ok(LabelSelector::everything());
        }
        let mut requirements = Vec::with_capacity(match_labels.len() + expressions.len());
        for (key, value) in match_labels {
            let r = Requirement::new(&key, Operator::Equals, Some(vec![value]))
                .map_err(ApiError::bad_request)?;
            requirements.push(r);
        }
        for expr in expressions {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )))
                }
            };
            let r = Requirement::new(&expr.key, operator, expr.values)
                .map_err(ApiError::bad_request)?;
            requirements.push(r);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// `metav1validation.ValidateLabelSelector` for a selector object at `path` (e.g.
    /// `spec.selector`): the 422 causes (empty when valid). A value of the wrong JSON type is
    /// a `FieldValueTypeInvalid` cause.
    pub fn validate_object(v: &Value, path: &str) -> Vec<Cause> {
        let mut causes = Vec::new();
        let selector = match v {
            Value::Null => return causes,
            Value::Object(o) => o,
            other => {
                causes.push(type_invalid(path, other, "object"));
                return causes;
            }
        };
        let labels_path = format!("{path}.matchLabels");
        match selector.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                let mut keys: Vec<&String> = labels.keys().collect();
                keys.sort();
                for key in keys {
                    for msg in label_key_errors(key) {
                        causes.push(Cause::invalid(
                            &labels_path,
                            &Value::from(key.as_str()),
                            msg,
                        ));
                    }
                    match labels.get(key) {
                        Some(Value::String(value)) => {
                            for msg in label_value_errors(value) {
                                causes.push(Cause::invalid(
                                    &labels_path,
                                    &Value::from(value.as_str()),
                                    msg,
                                ));
                            }
                        }
                        Some(other) => causes.push(type_invalid(
                            &format!("{labels_path}.{key}"),
                            other,
                            "string",
                        )),
                        None => {}
                    }
                }
            }
            Some(other) => causes.push(type_invalid(&labels_path, other, "object")),
        }
        let exprs_path = format!("{path}.matchExpressions");
        match selector.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    validate_expression(expr, &format!("{exprs_path}[{i}]"), &mut causes);
                }
            }
            Some(other) => causes.push(type_invalid(&exprs_path, other, "array")),
        }
        causes
    }

    /// The selector that matches everything (`labels.Everything()`).
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches nothing (`labels.Nothing()`).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// True if the selector does not restrict the selection (no requirements).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with these labels (`metadata.labels`, `None` = no labels) matches.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_invalid(path: &str, value: &Value, expected: &str) -> Cause {
    Cause::new(
        "FieldValueTypeInvalid",
        path,
        format!(
            "Invalid value: \"{}\": expected {expected}",
            json_type(value)
        ),
    )
}

fn object_match_labels(selector: &Map<String, Value>) -> Result<Vec<(String, String)>> {
    let labels = match selector.get("matchLabels") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(labels)) => labels,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of type \
                 map[string]string",
                json_type(other)
            )))
        }
    };
    let mut out = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        match v {
            Value::String(s) => out.push((k.clone(), s.clone())),
            other => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of \
                     type string",
                    json_type(other)
                )))
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A `metav1.LabelSelectorRequirement` read from JSON (`values: None` = absent or null).
struct Expression {
    key: String,
    operator: String,
    values: Option<Vec<String>>,
}

fn expression_string(expr: &Map<String, Value>, field: &str) -> Result<String> {
    match expr.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go struct field LabelSelectorRequirement.\
             matchExpressions.{field} of type string",
            json_type(other)
        ))),
    }
}

fn object_match_expressions(selector: &Map<String, Value>) -> Result<Vec<Expression>> {
    let exprs = match selector.get("matchExpressions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(exprs)) => exprs,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field LabelSelector.matchExpressions of \
                 type []v1.LabelSelectorRequirement",
                json_type(other)
            )))
        }
    };
    let mut out = Vec::with_capacity(exprs.len());
    for expr in exprs {
        let Value::Object(expr) = expr else {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field LabelSelector.matchExpressions of \
                 type v1.LabelSelectorRequirement",
                json_type(expr)
            )));
        };
        let values = match expr.get("values") {
            None | Some(Value::Null) => None,
            Some(Value::Array(values)) => {
                let mut list = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Value::String(s) => list.push(s.clone()),
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "json: cannot unmarshal {} into Go struct field \
                                 LabelSelectorRequirement.matchExpressions.values of type string",
                                json_type(other)
                            )))
                        }
                    }
                }
                // Like `append([]string(nil), values...)`: an empty list is nil.
                (!list.is_empty()).then_some(list)
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelectorRequirement.\
                     matchExpressions.values of type []string",
                    json_type(other)
                )))
            }
        };
        out.push(Expression {
            key: expression_string(expr, "key")?,
            operator: expression_string(expr, "operator")?,
            values,
        });
    }
    Ok(out)
}

/// `ValidateLabelSelectorRequirement` for one `matchExpressions` entry.
fn validate_expression(expr: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Value::Object(expr) = expr else {
        causes.push(type_invalid(path, expr, "object"));
        return;
    };
    let text = |field: &str, causes: &mut Vec<Cause>| match expr.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            causes.push(type_invalid(&format!("{path}.{field}"), other, "string"));
            String::new()
        }
    };
    let key = text("key", causes);
    let operator = text("operator", causes);
    let values_path = format!("{path}.values");
    let values: Vec<&Value> = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values.iter().collect(),
        Some(other) => {
            causes.push(type_invalid(&values_path, other, "array"));
            Vec::new()
        }
    };
    match operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &values_path,
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                causes.push(Cause::forbidden(
                    &values_path,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        _ => causes.push(Cause::invalid(
            format!("{path}.operator"),
            &Value::from(operator.as_str()),
            "not a valid selector operator",
        )),
    }
    for msg in label_key_errors(&key) {
        causes.push(Cause::invalid(
            format!("{path}.key"),
            &Value::from(key.as_str()),
            msg,
        ));
    }
    for (i, value) in values.iter().enumerate() {
        let value_path = format!("{values_path}[{i}]");
        match value {
            Value::String(s) => {
                for msg in label_value_errors(s) {
                    causes.push(Cause::invalid(&value_path, &Value::from(s.as_str()), msg));
                }
            }
            other => causes.push(type_invalid(&value_path, other, "string")),
        }
    }
}

// --- The labelSelector parser (labels.Lexer / labels.Parser). ---

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The lexer works on bytes and, like Kubernetes', treats a NUL byte as the end of the input.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn text(buf: &[u8]) -> String {
        String::from_utf8_lossy(buf).into_owned()
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special(c) || is_whitespace(c) {
                self.unread();
                break;
            }
            buf.push(c);
        }
        let s = Self::text(&buf);
        (keyword(&s).unwrap_or(Token::Identifier), s)
    }

    fn scan_special(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        let mut last: Option<(Token, String)> = None;
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if !is_special(c) {
                self.unread();
                break;
            }
            buf.push(c);
            let s = Self::text(&buf);
            if let Some(tok) = keyword(&s) {
                last = Some((tok, s));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        // Every special character is a token of its own, so `last` is always set here.
        last.unwrap_or((Token::EndOfString, String::new()))
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special(c) {
            self.scan_special()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

/// In a values context `in` and `notin` are plain identifiers.
fn in_values(tok: Token) -> Token {
    match tok {
        Token::In | Token::NotIn => Token::Identifier,
        t => t,
    }
}

impl Parser {
    fn new(s: &str) -> Parser {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn peek(&self, values: bool) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        (if values { in_values(tok) } else { tok }, lit)
    }

    fn next(&mut self, values: bool) -> (Token, String) {
        let item = self.peek(values);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.peek(true);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.next(true);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.peek(true);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(&key, op, Some(Vec::new()));
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, operator, Some(values))
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut tok, mut lit) = self.next(true);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(true);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = label_key_errors(&lit);
        if !errs.is_empty() {
            return Err(invalid_error(
                "<nil>",
                &InvalidValue::Str(lit.clone()),
                &errs.join("; "),
            ));
        }
        let (next, _) = self.peek(true);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.next(false);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    /// `(a,b,c)`: the values as a sorted set (`sets.String.List()`).
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(true);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(true);
        let set = match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (tok, _) = self.next(true);
                if tok != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                set
            }
            Token::ClosedPar => {
                self.next(true);
                vec![String::new()]
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        };
        let mut set = set;
        set.sort();
        set.dedup();
        Ok(set)
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(true);
            match tok {
                Token::Identifier => {
                    set.push(lit);
                    let (tok2, lit2) = self.peek(true);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    let (tok2, _) = self.peek(true);
                    if tok2 == Token::ClosedPar {
                        set.push(String::new());
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        set.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(true);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(true);
        if tok == Token::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors.
// ---------------------------------------------------------------------------------------------

/// The operator of a field selector requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field=value` / `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
}

impl FieldRequirement {
    /// The field label, e.g. `metadata.name`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The (unescaped) value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A parsed field selector: the AND of its terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// `fields.EscapeValue`: escapes `\`, `,` and `=`.
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`.
fn unescape_field_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Splits on commas not escaped by a backslash (escapes are kept for unescaping later).
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or_default());
    terms
}

/// The first `!=`, `==` or `=` in the term (the field part has no escaping).
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter like `fields.ParseSelector`: terms are sorted,
    /// `=` and `==` are the same, values may escape `\,` `\=` `\\`. Errors are 400 BadRequest.
    pub fn parse(s: &str) -> Result<FieldSelector> {
        let mut parts = split_field_terms(s);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_field_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_field_value(raw).map_err(ApiError::bad_request)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// True if the selector does not restrict the selection.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in their canonical (sorted) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The field labels the selector mentions.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// The value of a lone `metadata.name=<x>` requirement, if that is all the selector says
    /// (what `kubectl get NAME -w` and `kubectl wait` send).
    pub fn exact_name(&self) -> Option<&str> {
        match self.requirements.as_slice() {
            [r] if r.field == "metadata.name" && r.operator == FieldOperator::Equals => {
                Some(&r.value)
            }
            _ => None,
        }
    }

    /// Whether an object matches, given the value of each field (`None` counts as `""`,
    /// like `fields.Set.Get` for a field the object's field set lacks).
    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = value_of(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }

    /// The apiserver's field label conversion for a built-in resource (`Scheme.ConvertFieldLabel`
    /// as the list and watch handlers apply it through `Selector.Transform`): every field must
    /// be one the kind accepts, aliases are rewritten (`spec.host` → `spec.nodeName` on pods),
    /// and an unsupported field is the 400 Kubernetes returns for that kind, e.g.
    /// `field label not supported: spec.foo` (pods) or `"spec.foo" is not a known field
    /// selector: only "metadata.name", "metadata.namespace"` (kinds without a conversion
    /// function, such as deployments). `version` only matters for messages that name it.
    pub fn transform_for(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<FieldSelector> {
        let spec = builtin_spec(group, resource);
        self.transform(|field| {
            if let Some((_, to)) = spec.aliases.iter().find(|(from, _)| *from == field) {
                return Ok(to.to_string());
            }
            if spec.accepted.contains(&field) {
                return Ok(field.to_string());
            }
            Err(spec.reject.message(field, group, version))
        })
    }

    /// The field label conversion of a custom resource: `metadata.name`, `metadata.namespace`
    /// (namespaced kinds) and the CRD version's `selectableFields` (their `jsonPath` without the
    /// leading dot) are accepted, anything else is `field label not supported: <field>`.
    pub fn transform_for_custom(
        &self,
        namespaced: bool,
        selectable: &[&str],
    ) -> Result<FieldSelector> {
        self.transform(|field| {
            if field == "metadata.name"
                || (namespaced && field == "metadata.namespace")
                || selectable.contains(&field)
            {
                Ok(field.to_string())
            } else {
                Err(format!("field label not supported: {field}"))
            }
        })
    }

    fn transform(&self, f: impl Fn(&str) -> Result<String, String>) -> Result<FieldSelector> {
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            let field = f(&r.field).map_err(ApiError::bad_request)?;
            requirements.push(FieldRequirement {
                field,
                operator: r.operator,
                value: r.value.clone(),
            });
        }
        Ok(FieldSelector { requirements })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_field_value(&r.value))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Per-resource field labels.
// ---------------------------------------------------------------------------------------------

/// How a kind's conversion function words a rejected field label.
#[derive(Clone, Copy)]
enum Reject {
    /// `field label not supported: <f>` (core/v1, certificates, events.k8s.io).
    NotSupported,
    /// batch/v1 Job: `field label "<f>" not supported for Job`.
    Job,
    /// resource.k8s.io ResourceSlice: `field label not supported for <gvk>: <f>`.
    ResourceSlice,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for kinds without a conversion function.
    DefaultMeta,
}

impl Reject {
    fn message(self, field: &str, group: &str, version: &str) -> String {
        match self {
            Reject::NotSupported => format!("field label not supported: {field}"),
            Reject::Job => format!("field label {} not supported for Job", go_quote(field)),
            Reject::ResourceSlice => {
                format!(
                    "field label not supported for {group}/{version}, Kind=ResourceSlice: {field}"
                )
            }
            Reject::DefaultMeta => format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(field)
            ),
        }
    }
}

struct FieldSpec {
    accepted: &'static [&'static str],
    aliases: &'static [(&'static str, &'static str)],
    reject: Reject,
}

const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const EVENTS_V1_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "source",
    "type",
];

fn builtin_spec(group: &str, resource: &str) -> FieldSpec {
    let spec = |accepted, reject| FieldSpec {
        accepted,
        aliases: &[],
        reject,
    };
    match (group, resource) {
        ("", "pods") => FieldSpec {
            accepted: POD_FIELDS,
            aliases: &[("spec.host", "spec.nodeName")],
            reject: Reject::NotSupported,
        },
        ("", "nodes") => spec(
            &["metadata.name", "spec.unschedulable"],
            Reject::NotSupported,
        ),
        ("", "namespaces") => spec(&["metadata.name", "status.phase"], Reject::NotSupported),
        ("", "replicationcontrollers") => spec(
            &["metadata.name", "metadata.namespace", "status.replicas"],
            Reject::NotSupported,
        ),
        ("", "events") => spec(EVENT_FIELDS, Reject::NotSupported),
        ("", "secrets") => spec(
            &["metadata.name", "metadata.namespace", "type"],
            Reject::NotSupported,
        ),
        ("", "services") => spec(
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.clusterIP",
                "spec.type",
            ],
            Reject::NotSupported,
        ),
        ("events.k8s.io", "events") => spec(EVENTS_V1_FIELDS, Reject::NotSupported),
        ("batch", "jobs") => spec(
            &["metadata.name", "metadata.namespace", "status.successful"],
            Reject::Job,
        ),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            spec(&["metadata.name", "spec.signerName"], Reject::NotSupported)
        }
        ("resource.k8s.io", "resourceslices") => spec(
            &["metadata.name", "spec.nodeName", "spec.driver"],
            Reject::ResourceSlice,
        ),
        _ => spec(META_FIELDS, Reject::DefaultMeta),
    }
}

/// The field labels a built-in resource accepts in field selectors (what its conversion
/// function accepts, or `metadata.name`/`metadata.namespace` for kinds without one — which
/// includes every apps/v1 kind: Kubernetes rejects `status.replicas` on replicasets). Legacy
/// aliases (pods' `spec.host`) are not listed.
pub fn supported_fields(group: &str, resource: &str) -> Vec<&'static str> {
    builtin_spec(group, resource).accepted.to_vec()
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn text(obj: &Value, path: &[&str]) -> String {
    match lookup(obj, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn int_text(obj: &Value, path: &[&str]) -> String {
    lookup(obj, path)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

fn bool_text(obj: &Value, path: &[&str]) -> String {
    lookup(obj, path)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn non_empty_or(value: String, default: &str) -> String {
    if value.is_empty() {
        default.to_string()
    } else {
        value
    }
}

/// The value of a supported field label on an object, as the resource's `ToSelectableFields`
/// computes it (after defaulting): a missing string is `""`, booleans are `"true"`/`"false"`,
/// counts are decimal (`"0"` when missing), core events' `source` is `source.component` or
/// else `reportingComponent`. `obj` is in the shape of `group`'s API (events.k8s.io events
/// carry `regarding`, `deprecatedSource`...). `None` for a field the resource does not support;
/// `status.podIPs` is accepted by Kubernetes but never set, so it is always `""`.
pub fn field_value(group: &str, resource: &str, obj: &Value, field: &str) -> Option<String> {
    let spec = builtin_spec(group, resource);
    if !spec.accepted.contains(&field) {
        return None;
    }
    let path: Vec<&str> = field.split('.').collect();
    Some(match (group, resource, field) {
        (_, _, "metadata.name" | "metadata.namespace") => text(obj, &path),
        ("", "pods", "spec.hostNetwork") => bool_text(obj, &path),
        // v1's podIP is authoritative over podIPs[0] when both are set (the v1 conversion).
        ("", "pods", "status.podIP") => match text(obj, &["status", "podIP"]) {
            ip if !ip.is_empty() => ip,
            _ => match lookup(obj, &["status", "podIPs"]) {
                Some(Value::Array(ips)) => {
                    ips.first().map(|ip| text(ip, &["ip"])).unwrap_or_default()
                }
                _ => String::new(),
            },
        },
        ("", "pods", "status.podIPs") => String::new(),
        ("", "nodes", "spec.unschedulable") => bool_text(obj, &path),
        ("", "replicationcontrollers", "status.replicas") => int_text(obj, &path),
        ("", "secrets", "type") => non_empty_or(text(obj, &["type"]), "Opaque"),
        ("", "services", "spec.type") => non_empty_or(text(obj, &path), "ClusterIP"),
        ("", "events", "source") => non_empty_or(
            text(obj, &["source", "component"]),
            &text(obj, &["reportingComponent"]),
        ),
        ("events.k8s.io", "events", "source") => non_empty_or(
            text(obj, &["deprecatedSource", "component"]),
            &text(obj, &["reportingController"]),
        ),
        ("batch", "jobs", "status.successful") => int_text(obj, &["status", "succeeded"]),
        _ => text(obj, &path),
    })
}

/// The value of a custom resource's selectable field (a CRD version's `selectableFields`
/// `jsonPath` without the leading dot, or `metadata.name`/`metadata.namespace`), as
/// apiextensions-apiserver computes it: strings as is, integers in decimal, booleans as
/// `true`/`false`, and `""` when the field is missing.
pub fn custom_field_value(obj: &Value, field: &str) -> String {
    let path: Vec<&str> = field.split('.').collect();
    text(obj, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel}"),
            Err(e) => {
                assert_eq!(e.status_parts().0, 400);
                e.to_string()
            }
        }
    }

    fn field_err(s: &str) -> String {
        match FieldSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel}"),
            Err(e) => {
                assert_eq!(e.status_parts().1, "BadRequest");
                e.to_string()
            }
        }
    }

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' \
        or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
        'my.name',  or '123-abc', regex used for validation is \
        '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    #[test]
    fn parses_every_operator_and_prints_canonically() {
        let sel = LabelSelector::parse(
            "tier  notin (b, a) , env==prod,!legacy,app=web,track!=canary,x in (z,y,y),\
             replicas>3,weight<10,has",
        )
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,env==prod,has,!legacy,replicas>3,tier notin (a,b),track!=canary,weight<10,\
             x in (y,z)"
        );
        let ops: Vec<Operator> = sel.requirements().iter().map(|r| r.operator()).collect();
        assert_eq!(
            ops,
            vec![
                Operator::Equals,
                Operator::DoubleEquals,
                Operator::Exists,
                Operator::DoesNotExist,
                Operator::GreaterThan,
                Operator::NotIn,
                Operator::NotEquals,
                Operator::LessThan,
                Operator::In,
            ]
        );
        // The canonical form parses back to the same selector.
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
    }

    #[test]
    fn empty_and_blank_selectors_select_everything() {
        for s in ["", "   ", "\t"] {
            let sel = LabelSelector::parse(s).unwrap();
            assert!(sel.is_empty());
            assert!(sel.matches(None));
            assert_eq!(sel.to_string(), "");
        }
        assert!(LabelSelector::everything().matches(Some(&labels(json!({"a": "b"})))));
    }

    #[test]
    fn matching_follows_kubernetes() {
        let l = labels(json!({"app": "web", "env": "prod", "replicas": "5", "odd": "x"}));
        let m = |s: &str, labels: Option<&Map<String, Value>>| {
            LabelSelector::parse(s).unwrap().matches(labels)
        };
        assert!(m("app=web", Some(&l)));
        assert!(m("app==web,env=prod", Some(&l)));
        assert!(!m("app=api", Some(&l)));
        assert!(!m("missing=x", Some(&l)));
        assert!(m("app!=api", Some(&l)));
        assert!(m("missing!=x", Some(&l)), "!= matches a missing key");
        assert!(m("env in (dev,prod)", Some(&l)));
        assert!(!m("env in (dev)", Some(&l)));
        assert!(!m("missing in (a)", Some(&l)));
        assert!(m("env notin (dev)", Some(&l)));
        assert!(m("missing notin (a)", Some(&l)));
        assert!(!m("env notin (prod)", Some(&l)));
        assert!(m("app", Some(&l)));
        assert!(!m("missing", Some(&l)));
        assert!(m("!missing", Some(&l)));
        assert!(!m("!app", Some(&l)));
        assert!(m("replicas>4", Some(&l)));
        assert!(!m("replicas>5", Some(&l)));
        assert!(m("replicas<6", Some(&l)));
        assert!(
            !m("odd>1", Some(&l)),
            "non-integer label values never match gt/lt"
        );
        assert!(!m("missing<1", Some(&l)));
        // No labels at all.
        assert!(m("!app", None));
        assert!(m("app!=web", None));
        assert!(!m("app", None));
        assert!(m("empty=", Some(&labels(json!({"empty": ""})))));
        assert!(m("e in (,x)", Some(&labels(json!({"e": ""})))));
    }

    #[test]
    fn keywords_are_values_in_value_position_and_keys_at_the_start() {
        let sel = LabelSelector::parse("in=notin,x in (in,notin)").unwrap();
        assert_eq!(sel.to_string(), "in=notin,x in (in,notin)");
        let sel = LabelSelector::parse("x in (,a,,b,)").unwrap();
        assert_eq!(sel.requirements()[0].values(), ["", "a", "b"]);
        assert_eq!(sel.to_string(), "x in (,a,b)");
        let sel = LabelSelector::parse("x in ()").unwrap();
        assert_eq!(sel.requirements()[0].values(), [""]);
    }

    #[test]
    fn syntax_errors_have_kubernetes_messages() {
        assert_eq!(
            parse_err("a in ("),
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("=b"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a=b,"),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_err("a=b c=d"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            parse_err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        // `a==` is an empty exact value, which is valid.
        assert!(LabelSelector::parse("a==").is_ok());
        assert_eq!(
            parse_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("!a=b"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            parse_err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_rejected_with_validation_messages() {
        assert_eq!(
            parse_err("app:web"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"app:web\": {NAME_PART_REGEX}"
            )
        );
        let long = "k".repeat(64);
        assert_eq!(
            parse_err(&format!("{long}=v")),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must \
                 be no more than 63 characters"
            )
        );
        assert_eq!(
            parse_err("Example.com/a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part \
             a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            parse_err("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be \
             non-empty"
        );
        assert!(parse_err("a/b/c").contains(
            "Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters"
        ));
        let value = "v".repeat(64);
        assert_eq!(
            parse_err(&format!("k={value}")),
            format!(
                "unable to parse requirement: values[0][k]: Invalid value: \"{value}\": must be \
                 no more than 63 characters"
            )
        );
        assert_eq!(
            parse_err("k=-v"),
            "unable to parse requirement: values[0][k]: Invalid value: \"-v\": a valid label \
             must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and \
             must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  \
             or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        // A prefixed key with a valid DNS prefix is fine.
        let sel = LabelSelector::parse("app.kubernetes.io/name=web").unwrap();
        assert_eq!(sel.requirements()[0].key(), "app.kubernetes.io/name");
    }

    #[test]
    fn from_object_converts_match_labels_and_expressions() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "owner", "operator": "Exists", "values": []},
            ],
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env in (prod,staging),owner,tier=front,zone notin (b)"
        );
        let l = labels(json!({"app": "web", "tier": "front", "env": "prod", "owner": "me"}));
        assert!(sel.matches(Some(&l)));
        let mut l2 = l.clone();
        l2.insert("canary".into(), json!("yes"));
        assert!(!sel.matches(Some(&l2)));
        let mut l3 = l.clone();
        l3.insert("zone".into(), json!("b"));
        assert!(!sel.matches(Some(&l3)));
    }

    #[test]
    fn from_object_null_selects_nothing_and_empty_selects_everything() {
        let nothing = LabelSelector::from_object(&Value::Null).unwrap();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(None));
        assert_eq!(nothing.to_string(), "");
        let everything = LabelSelector::from_object(&json!({})).unwrap();
        assert!(everything.is_empty());
        assert!(everything.matches(Some(&labels(json!({"a": "b"})))));
        let everything =
            LabelSelector::from_object(&json!({"matchLabels": {}, "matchExpressions": []}))
                .unwrap();
        assert!(everything.is_empty());
    }

    #[test]
    fn from_object_errors_are_bad_requests_with_kubernetes_messages() {
        let err = |v: Value| {
            let e = LabelSelector::from_object(&v).unwrap_err();
            assert_eq!(e.status_parts().0, 400);
            e.to_string()
        };
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]})),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not \
             exist"
        );
        assert_eq!(
            err(json!({"matchLabels": {"bad key": "v"}})),
            format!("key: Invalid value: \"bad key\": {NAME_PART_REGEX}")
        );
        assert_eq!(
            err(
                json!({"matchExpressions": [{"key": "bad key", "operator": "In", "values": ["-x"]}]})
            ),
            format!(
                "[key: Invalid value: \"bad key\": {NAME_PART_REGEX}, values[0][bad key]: Invalid \
                 value: \"-x\": a valid label must be an empty string or consist of alphanumeric \
                 characters, '-', '_' or '.', and must start and end with an alphanumeric \
                 character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for \
                 validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
            )
        );
        assert_eq!(
            err(json!({"matchLabels": "app=web"})),
            "json: cannot unmarshal string into Go struct field LabelSelector.matchLabels of type \
             map[string]string"
        );
        assert_eq!(
            err(json!({"matchLabels": {"a": 1}})),
            "json: cannot unmarshal number into Go struct field LabelSelector.matchLabels of type \
             string"
        );
        assert_eq!(
            err(json!("app=web")),
            "json: cannot unmarshal string into Go value of type v1.LabelSelector"
        );
    }

    #[test]
    fn validate_object_returns_422_causes() {
        let causes = LabelSelector::validate_object(
            &json!({
                "matchLabels": {"good": "-bad", "bad key": "ok"},
                "matchExpressions": [
                    {"key": "a", "operator": "In"},
                    {"key": "b", "operator": "Exists", "values": ["x"]},
                    {"key": "c", "operator": "Gt", "values": ["1"]},
                    {"key": "", "operator": "In", "values": ["a b"]},
                ],
            }),
            "spec.selector",
        );
        let got: Vec<(String, String, String)> = causes
            .iter()
            .map(|c| (c.reason.clone(), c.field.clone(), c.message.clone()))
            .collect();
        let label_value_msg = "a valid label must be an empty string or consist of alphanumeric \
            characters, '-', '_' or '.', and must start and end with an alphanumeric character \
            (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
            '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let s = |a: &str| a.to_string();
        assert_eq!(
            got,
            vec![
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchLabels"),
                    format!("Invalid value: \"bad key\": {NAME_PART_REGEX}")
                ),
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchLabels"),
                    format!("Invalid value: \"-bad\": {label_value_msg}")
                ),
                (
                    s("FieldValueRequired"),
                    s("spec.selector.matchExpressions[0].values"),
                    s("Required value: must be specified when `operator` is 'In' or 'NotIn'")
                ),
                (
                    s("FieldValueForbidden"),
                    s("spec.selector.matchExpressions[1].values"),
                    s(
                        "Forbidden: may not be specified when `operator` is 'Exists' or \
                       'DoesNotExist'"
                    )
                ),
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchExpressions[2].operator"),
                    s("Invalid value: \"Gt\": not a valid selector operator")
                ),
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchExpressions[3].key"),
                    s("Invalid value: \"\": name part must be non-empty")
                ),
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchExpressions[3].key"),
                    format!("Invalid value: \"\": {NAME_PART_REGEX}")
                ),
                (
                    s("FieldValueInvalid"),
                    s("spec.selector.matchExpressions[3].values[0]"),
                    format!("Invalid value: \"a b\": {label_value_msg}")
                ),
            ]
        );
        assert!(LabelSelector::validate_object(
            &json!({"matchLabels": {"app": "web"}}),
            "spec.selector"
        )
        .is_empty());
        assert!(LabelSelector::validate_object(&Value::Null, "spec.selector").is_empty());
        let causes = LabelSelector::validate_object(&json!({"matchLabels": []}), "spec.selector");
        assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
        assert_eq!(causes[0].field, "spec.selector.matchLabels");
    }

    #[test]
    fn field_selector_parses_operators_sorts_and_escapes() {
        let sel = FieldSelector::parse(
            "status.phase==Running,spec.nodeName!=,metadata.name=a\\,b\\=c\\\\d",
        )
        .unwrap();
        let reqs: Vec<(&str, FieldOperator, &str)> = sel
            .requirements()
            .iter()
            .map(|r| (r.field(), r.operator(), r.value()))
            .collect();
        assert_eq!(
            reqs,
            vec![
                ("metadata.name", FieldOperator::Equals, "a,b=c\\d"),
                ("spec.nodeName", FieldOperator::NotEquals, ""),
                ("status.phase", FieldOperator::Equals, "Running"),
            ]
        );
        assert_eq!(
            sel.to_string(),
            "metadata.name=a\\,b\\=c\\\\d,spec.nodeName!=,status.phase=Running"
        );
        assert_eq!(FieldSelector::parse(&sel.to_string()).unwrap(), sel);
        assert_eq!(
            sel.fields().collect::<Vec<_>>(),
            ["metadata.name", "spec.nodeName", "status.phase"]
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
        // No whitespace trimming: the field is "a " and the value " b".
        let sel = FieldSelector::parse("a = b").unwrap();
        assert_eq!(sel.requirements()[0].field(), "a ");
        assert_eq!(sel.requirements()[0].value(), " b");
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            field_err("a=b,foo"),
            "invalid selector: 'a=b,foo'; can't understand 'foo'"
        );
        assert_eq!(
            field_err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_err("a=b\\x"),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            field_err("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
    }

    #[test]
    fn field_selector_matching_and_exact_name() {
        let sel = FieldSelector::parse("spec.nodeName!=,status.phase=Running").unwrap();
        let pod = |node: Option<&str>, phase: &str| {
            let node = node.map(str::to_string);
            let phase = phase.to_string();
            move |f: &str| match f {
                "spec.nodeName" => node.clone(),
                "status.phase" => Some(phase.clone()),
                _ => None,
            }
        };
        assert!(sel.matches(pod(Some("n1"), "Running")));
        assert!(
            !sel.matches(pod(None, "Running")),
            "a missing field is \"\""
        );
        assert!(!sel.matches(pod(Some("n1"), "Pending")));
        assert_eq!(
            FieldSelector::parse("metadata.name=web")
                .unwrap()
                .exact_name(),
            Some("web")
        );
        assert_eq!(
            FieldSelector::parse("metadata.name==web")
                .unwrap()
                .exact_name(),
            Some("web")
        );
        assert_eq!(
            FieldSelector::parse("metadata.name!=web")
                .unwrap()
                .exact_name(),
            None
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=web,metadata.namespace=x")
                .unwrap()
                .exact_name(),
            None
        );
    }

    #[test]
    fn transform_rejects_unsupported_fields_with_each_kinds_message() {
        let err = |sel: &str, group: &str, version: &str, resource: &str| {
            let e = FieldSelector::parse(sel)
                .unwrap()
                .transform_for(group, version, resource)
                .unwrap_err();
            assert_eq!(e.status_parts().0, 400);
            e.to_string()
        };
        assert_eq!(
            err("spec.foo=x", "", "v1", "pods"),
            "field label not supported: spec.foo"
        );
        assert_eq!(
            err("metadata.namespace=x", "", "v1", "nodes"),
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            err("status.replicas=0", "apps", "v1", "replicasets"),
            "\"status.replicas\" is not a known field selector: only \"metadata.name\", \
             \"metadata.namespace\""
        );
        assert_eq!(
            err("foo.bar=baz", "networking.k8s.io", "v1", "ingresses"),
            "\"foo.bar\" is not a known field selector: only \"metadata.name\", \
             \"metadata.namespace\""
        );
        assert_eq!(
            err("status.failed=1", "batch", "v1", "jobs"),
            "field label \"status.failed\" not supported for Job"
        );
        assert_eq!(
            err("involvedObject.kind=Pod", "events.k8s.io", "v1", "events"),
            "field label not supported: involvedObject.kind"
        );
        assert_eq!(
            err(
                "spec.pool=x",
                "resource.k8s.io",
                "v1beta1",
                "resourceslices"
            ),
            "field label not supported for resource.k8s.io/v1beta1, Kind=ResourceSlice: spec.pool"
        );
        assert_eq!(err("=x", "", "v1", "pods"), "field label not supported: ");
    }

    #[test]
    fn transform_accepts_supported_fields_and_rewrites_aliases() {
        let ok = |sel: &str, group: &str, resource: &str| {
            FieldSelector::parse(sel)
                .unwrap()
                .transform_for(group, "v1", resource)
                .unwrap()
                .to_string()
        };
        assert_eq!(ok("spec.host=n1", "", "pods"), "spec.nodeName=n1");
        assert_eq!(
            ok("status.phase!=Running,spec.nodeName=", "", "pods"),
            "spec.nodeName=,status.phase!=Running"
        );
        assert_eq!(
            ok("metadata.namespace=x", "", "persistentvolumes"),
            "metadata.namespace=x"
        );
        assert_eq!(
            ok("status.successful=1", "batch", "jobs"),
            "status.successful=1"
        );
        assert_eq!(
            ok("regarding.kind=Pod", "events.k8s.io", "events"),
            "regarding.kind=Pod"
        );
        let custom = FieldSelector::parse("spec.color=red").unwrap();
        assert!(custom.transform_for_custom(true, &["spec.color"]).is_ok());
        assert_eq!(
            custom
                .transform_for_custom(true, &[])
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.color"
        );
        let ns = FieldSelector::parse("metadata.namespace=a").unwrap();
        assert!(ns.transform_for_custom(true, &[]).is_ok());
        assert_eq!(
            ns.transform_for_custom(false, &[]).unwrap_err().to_string(),
            "field label not supported: metadata.namespace"
        );
    }

    #[test]
    fn supported_fields_per_resource() {
        assert_eq!(supported_fields("", "pods"), POD_FIELDS);
        assert_eq!(
            supported_fields("", "nodes"),
            ["metadata.name", "spec.unschedulable"]
        );
        assert_eq!(
            supported_fields("", "namespaces"),
            ["metadata.name", "status.phase"]
        );
        assert_eq!(
            supported_fields("", "secrets"),
            ["metadata.name", "metadata.namespace", "type"]
        );
        assert_eq!(
            supported_fields("", "services"),
            [
                "metadata.name",
                "metadata.namespace",
                "spec.clusterIP",
                "spec.type"
            ]
        );
        assert_eq!(
            supported_fields("", "replicationcontrollers"),
            ["metadata.name", "metadata.namespace", "status.replicas"]
        );
        assert_eq!(supported_fields("apps", "replicasets"), META_FIELDS);
        assert_eq!(supported_fields("apps", "deployments"), META_FIELDS);
        assert_eq!(
            supported_fields("batch", "jobs"),
            ["metadata.name", "metadata.namespace", "status.successful"]
        );
        assert_eq!(
            supported_fields("certificates.k8s.io", "certificatesigningrequests"),
            ["metadata.name", "spec.signerName"]
        );
        assert_eq!(supported_fields("", "events"), EVENT_FIELDS);
        assert_eq!(
            supported_fields("events.k8s.io", "events"),
            EVENTS_V1_FIELDS
        );
        assert_eq!(supported_fields("example.com", "widgets"), META_FIELDS);
    }

    #[test]
    fn field_values_for_pods() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "sa", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.9",
                       "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]},
        });
        let v = |f: &str| field_value("", "pods", &pod, f);
        assert_eq!(v("metadata.name").as_deref(), Some("web-1"));
        assert_eq!(v("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(v("spec.nodeName").as_deref(), Some(""));
        assert_eq!(v("spec.restartPolicy").as_deref(), Some("Always"));
        assert_eq!(
            v("spec.schedulerName").as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(v("spec.serviceAccountName").as_deref(), Some("sa"));
        assert_eq!(v("spec.hostNetwork").as_deref(), Some("true"));
        assert_eq!(v("status.phase").as_deref(), Some("Running"));
        // podIP wins over podIPs[0], as in the v1 → internal conversion.
        assert_eq!(v("status.podIP").as_deref(), Some("10.0.0.9"));
        let ips_only = json!({"status": {"podIPs": [{"ip": "fd00::1"}]}});
        assert_eq!(
            field_value("", "pods", &ips_only, "status.podIP").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(v("status.podIPs").as_deref(), Some(""));
        assert_eq!(v("status.nominatedNodeName").as_deref(), Some(""));
        assert_eq!(v("spec.containers"), None);
        let bare = json!({"metadata": {"name": "p"}, "status": {"podIP": "10.1.1.1"}});
        assert_eq!(
            field_value("", "pods", &bare, "spec.hostNetwork").as_deref(),
            Some("false")
        );
        assert_eq!(
            field_value("", "pods", &bare, "status.podIP").as_deref(),
            Some("10.1.1.1")
        );
        // The whole pipeline: parse, transform, match.
        let sel = FieldSelector::parse("spec.host=,status.phase=Running")
            .unwrap()
            .transform_for("", "v1", "pods")
            .unwrap();
        assert!(sel.matches(|f| field_value("", "pods", &pod, f)));
    }

    #[test]
    fn field_values_for_other_resources() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value("", "nodes", &node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        let node = json!({"metadata": {"name": "n2"}, "spec": {}});
        assert_eq!(
            field_value("", "nodes", &node, "spec.unschedulable").as_deref(),
            Some("false")
        );
        assert_eq!(field_value("", "nodes", &node, "metadata.namespace"), None);
        let ns = json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            field_value("", "namespaces", &ns, "status.phase").as_deref(),
            Some("Terminating")
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert_eq!(
            field_value("", "secrets", &secret, "type").as_deref(),
            Some("kubernetes.io/tls")
        );
        assert_eq!(
            field_value("", "secrets", &json!({}), "type").as_deref(),
            Some("Opaque")
        );
        let svc = json!({"spec": {"clusterIP": "10.96.0.1", "type": "NodePort"}});
        assert_eq!(
            field_value("", "services", &svc, "spec.clusterIP").as_deref(),
            Some("10.96.0.1")
        );
        assert_eq!(
            field_value("", "services", &svc, "spec.type").as_deref(),
            Some("NodePort")
        );
        assert_eq!(
            field_value("", "services", &json!({"spec": {}}), "spec.type").as_deref(),
            Some("ClusterIP")
        );
        let rc = json!({"status": {"replicas": 3}});
        assert_eq!(
            field_value("", "replicationcontrollers", &rc, "status.replicas").as_deref(),
            Some("3")
        );
        assert_eq!(
            field_value("", "replicationcontrollers", &json!({}), "status.replicas").as_deref(),
            Some("0")
        );
        let job = json!({"status": {"succeeded": 1}});
        assert_eq!(
            field_value("batch", "jobs", &job, "status.successful").as_deref(),
            Some("1")
        );
        let csr = json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}});
        assert_eq!(
            field_value(
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr,
                "spec.signerName"
            )
            .as_deref(),
            Some("kubernetes.io/kubelet-serving")
        );
        assert_eq!(
            field_value("apps", "replicasets", &rc, "status.replicas"),
            None
        );
    }

    #[test]
    fn field_values_for_events() {
        let event = json!({
            "metadata": {"name": "web.17", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                               "uid": "u-1", "apiVersion": "v1", "resourceVersion": "42",
                               "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "reportingComponent": "kubelet",
            "source": {"component": "kubelet", "host": "n1"},
        });
        let v = |f: &str| field_value("", "events", &event, f);
        assert_eq!(v("involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(v("involvedObject.namespace").as_deref(), Some("default"));
        assert_eq!(v("involvedObject.name").as_deref(), Some("web"));
        assert_eq!(v("involvedObject.uid").as_deref(), Some("u-1"));
        assert_eq!(v("involvedObject.apiVersion").as_deref(), Some("v1"));
        assert_eq!(v("involvedObject.resourceVersion").as_deref(), Some("42"));
        assert_eq!(
            v("involvedObject.fieldPath").as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(v("reason").as_deref(), Some("BackOff"));
        assert_eq!(v("type").as_deref(), Some("Warning"));
        assert_eq!(v("reportingComponent").as_deref(), Some("kubelet"));
        assert_eq!(v("source").as_deref(), Some("kubelet"));
        let new_style = json!({"reportingComponent": "scheduler", "source": {}});
        assert_eq!(
            field_value("", "events", &new_style, "source").as_deref(),
            Some("scheduler")
        );
        let v1 = json!({
            "regarding": {"kind": "Node", "name": "n1"},
            "reportingController": "kubelet", "reason": "Ready", "type": "Normal",
        });
        let v = |f: &str| field_value("events.k8s.io", "events", &v1, f);
        assert_eq!(v("regarding.kind").as_deref(), Some("Node"));
        assert_eq!(v("regarding.name").as_deref(), Some("n1"));
        assert_eq!(v("regarding.namespace").as_deref(), Some(""));
        assert_eq!(v("reportingController").as_deref(), Some("kubelet"));
        assert_eq!(v("source").as_deref(), Some("kubelet"));
        assert_eq!(v("involvedObject.kind"), None);
    }

    #[test]
    fn custom_field_values() {
        let obj = json!({"metadata": {"name": "w"},
                         "spec": {"color": "red", "size": 3, "on": true, "nested": {"a": 1}}});
        assert_eq!(custom_field_value(&obj, "spec.color"), "red");
        assert_eq!(custom_field_value(&obj, "spec.size"), "3");
        assert_eq!(custom_field_value(&obj, "spec.on"), "true");
        assert_eq!(custom_field_value(&obj, "spec.missing"), "");
        assert_eq!(custom_field_value(&obj, "metadata.name"), "w");
        let sel = FieldSelector::parse("spec.color=red,spec.on=true")
            .unwrap()
            .transform_for_custom(true, &["spec.color", "spec.on"])
            .unwrap();
        assert!(sel.matches(|f| Some(custom_field_value(&obj, f))));
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }
}
