//! Conversions between Tessera's values and errors and the PostgreSQL wire formats.
//!
//! Text format uses Tessera's own PostgreSQL-compatible text output (floats, booleans,
//! bytea hex) so that psql shows exactly what the shell and PostgreSQL show; binary format
//! uses PostgreSQL's binary encodings through `postgres-types`, as drivers expect.

use crate::error::Error;
use crate::session::Row;
use crate::sql::planner::OutputColumn;
use crate::types::{DataType, ElementType, Value};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use std::sync::Arc;

/// The PostgreSQL type of a Tessera type.
pub fn pg_type(data_type: DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::SmallInt => Type::INT2,
        DataType::Integer => Type::INT4,
        DataType::BigInt => Type::INT8,
        DataType::Real => Type::FLOAT4,
        DataType::Double => Type::FLOAT8,
        DataType::Text { max_length: None } => Type::TEXT,
        DataType::Text { .. } => Type::VARCHAR,
        DataType::Bytea => Type::BYTEA,
        DataType::Array(element) => match element {
            ElementType::Boolean => Type::BOOL_ARRAY,
            ElementType::SmallInt => Type::INT2_ARRAY,
            ElementType::Integer => Type::INT4_ARRAY,
            ElementType::BigInt => Type::INT8_ARRAY,
            ElementType::Real => Type::FLOAT4_ARRAY,
            ElementType::Double => Type::FLOAT8_ARRAY,
            ElementType::Text => Type::TEXT_ARRAY,
            ElementType::Bytea => Type::BYTEA_ARRAY,
        },
    }
}

/// The Tessera type of a PostgreSQL type a client declared for a parameter, if we have one.
pub fn data_type_of(pg: &Type) -> Option<DataType> {
    Some(match *pg {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::SmallInt,
        Type::INT4 => DataType::Integer,
        Type::INT8 => DataType::BigInt,
        Type::FLOAT4 => DataType::Real,
        Type::FLOAT8 => DataType::Double,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            crate::types::TEXT
        }
        Type::BYTEA => DataType::Bytea,
        Type::BOOL_ARRAY => DataType::Array(ElementType::Boolean),
        Type::INT2_ARRAY => DataType::Array(ElementType::SmallInt),
        Type::INT4_ARRAY => DataType::Array(ElementType::Integer),
        Type::INT8_ARRAY => DataType::Array(ElementType::BigInt),
        Type::FLOAT4_ARRAY => DataType::Array(ElementType::Real),
        Type::FLOAT8_ARRAY => DataType::Array(ElementType::Double),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::NAME_ARRAY => {
            DataType::Array(ElementType::Text)
        }
        Type::BYTEA_ARRAY => DataType::Array(ElementType::Bytea),
        _ => return None,
    })
}

/// RowDescription fields for result columns, in the formats the client asked for.
pub fn fields(columns: &[OutputColumn], format: Option<&Format>) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let field_format = format.map_or(FieldFormat::Text, |f| f.format_for(i));
            FieldInfo::new(
                column.name.clone(),
                None,
                None,
                pg_type(column.data_type),
                field_format,
            )
        })
        .collect()
}

/// Encodes one result row.
pub fn encode_row(
    encoder: &mut DataRowEncoder,
    schema: &Arc<Vec<FieldInfo>>,
    row: &Row,
) -> PgWireResult<DataRow> {
    for (value, field) in row.values().iter().zip(schema.iter()) {
        match field.format() {
            FieldFormat::Text => {
                let text = (!value.is_null()).then(|| value.to_string());
                encoder.encode_field_with_type_and_format(
                    &text,
                    &Type::TEXT,
                    FieldFormat::Text,
                    field.format_options(),
                )?;
            }
            FieldFormat::Binary => encode_binary(encoder, field, value)?,
        }
    }
    Ok(encoder.take_row())
}

fn encode_binary(
    encoder: &mut DataRowEncoder,
    field: &FieldInfo,
    value: &Value,
) -> PgWireResult<()> {
    let (data_type, options) = (field.datatype(), field.format_options());
    let binary = FieldFormat::Binary;
    // The column's declared type decides the width on the wire; values are cast to it.
    match value {
        Value::Null => {
            encoder.encode_field_with_type_and_format(&None::<i32>, data_type, binary, options)
        }
        Value::Boolean(b) => {
            encoder.encode_field_with_type_and_format(b, data_type, binary, options)
        }
        Value::Real(v) => encoder.encode_field_with_type_and_format(v, data_type, binary, options),
        Value::Text(s) => encoder.encode_field_with_type_and_format(s, data_type, binary, options),
        Value::Bytea(b) => encoder.encode_field_with_type_and_format(b, data_type, binary, options),
        // Encoded here and passed through as raw bytes: the RowDescription already told
        // the client the array type.
        Value::Array { element, items } => encoder.encode_field_with_type_and_format(
            &super::binary_array::encode(*element, items),
            &Type::BYTEA,
            binary,
            options,
        ),
        numeric => match *data_type {
            Type::INT2 => encoder.encode_field_with_type_and_format(
                &(int(numeric)? as i16),
                data_type,
                binary,
                options,
            ),
            Type::INT4 => encoder.encode_field_with_type_and_format(
                &(int(numeric)? as i32),
                data_type,
                binary,
                options,
            ),
            Type::INT8 => encoder.encode_field_with_type_and_format(
                &int(numeric)?,
                data_type,
                binary,
                options,
            ),
            Type::FLOAT4 => encoder.encode_field_with_type_and_format(
                &(float(numeric)? as f32),
                data_type,
                binary,
                options,
            ),
            _ => encoder.encode_field_with_type_and_format(
                &float(numeric)?,
                data_type,
                binary,
                options,
            ),
        },
    }
}

fn int(value: &Value) -> PgWireResult<i64> {
    value
        .as_i64()
        .ok_or_else(|| internal(format!("{value:?} is not an integer")))
}

fn float(value: &Value) -> PgWireResult<f64> {
    value
        .as_f64()
        .ok_or_else(|| internal(format!("{value:?} is not a number")))
}

fn internal(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&Error::Internal(message))))
}

/// Decodes the parameters of a Bind, each by the type the statement gives it (or text
/// when nothing decided one), in text or binary format as the client sent it.
pub fn decode_parameters<S: Clone>(
    portal: &Portal<S>,
    types: &[Option<DataType>],
) -> PgWireResult<Vec<Value>> {
    (0..portal.parameter_len())
        .map(|i| {
            let data_type = types
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(crate::types::TEXT);
            decode_parameter(portal, i, data_type)
        })
        .collect()
}

fn decode_parameter<S: Clone>(
    portal: &Portal<S>,
    i: usize,
    data_type: DataType,
) -> PgWireResult<Value> {
    let pg = pg_type(data_type);
    let value = match data_type {
        DataType::Boolean => portal.parameter::<bool>(i, &pg)?.map(Value::Boolean),
        DataType::SmallInt => portal.parameter::<i16>(i, &pg)?.map(Value::SmallInt),
        DataType::Integer => portal.parameter::<i32>(i, &pg)?.map(Value::Integer),
        DataType::BigInt => portal.parameter::<i64>(i, &pg)?.map(Value::BigInt),
        DataType::Real => portal.parameter::<f32>(i, &pg)?.map(Value::Real),
        DataType::Double => portal.parameter::<f64>(i, &pg)?.map(Value::Double),
        DataType::Text { .. } => portal.parameter::<String>(i, &pg)?.map(Value::Text),
        DataType::Bytea => portal.parameter::<Vec<u8>>(i, &pg)?.map(Value::Bytea),
        DataType::Array(element) => match portal.parameters.get(i).cloned().flatten() {
            None => None,
            Some(bytes) if portal.parameter_format.is_binary(i) => {
                Some(super::binary_array::decode(&bytes, element).map_err(user_error)?)
            }
            Some(bytes) => Some(
                Value::Text(String::from_utf8_lossy(&bytes).into_owned())
                    .cast(data_type)
                    .map_err(user_error)?,
            ),
        },
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A Tessera error as a PostgreSQL ErrorResponse (severity, SQLSTATE, message, detail,
/// hint, position).
pub fn error_info(error: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        "ERROR".to_string(),
        error.sqlstate().to_string(),
        error.to_string(),
    );
    info.detail = error.detail();
    info.hint = error.hint().map(str::to_string);
    info.position = error.position().map(|p| p.to_string());
    info.where_context = error.context();
    info
}

/// A Tessera error as a pgwire error the connection reports to the client.
pub fn user_error(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&error)))
}
