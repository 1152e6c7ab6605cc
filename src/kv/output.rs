//! The `-w/--write-out` writers: simple, json, fields, table and protobuf, as etcdctl prints
//! them.

use super::error::KvError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self, KvError> {
        match s {
            "simple" => Ok(OutputFormat::Simple),
            "json" => Ok(OutputFormat::Json),
            "fields" => Ok(OutputFormat::Fields),
            "table" => Ok(OutputFormat::Table),
            "protobuf" => Ok(OutputFormat::Protobuf),
            _ => Err(KvError::Unsupported("unsupported output format".into())),
        }
    }
}
