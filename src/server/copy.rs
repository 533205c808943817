//! COPY's sub-protocol: COPY FROM STDIN's CopyInResponse, then the client's CopyData,
//! CopyDone or CopyFail, each handed to the session as it arrives; COPY TO STDOUT's
//! CopyOutResponse, one CopyData per line, CopyDone.
//!
//! pgwire drives the states (a copy-in's data messages come to [`CopyHandler`]); after
//! an error it drops the rest of the client's copy data, as PostgreSQL does. COPY TO's
//! messages are sent here rather than through pgwire's row-counting stream, whose count
//! would include a header line.

use super::connection::Backend;
use super::wire::user_error;
use crate::session::{CopyResult, QueryResult};
use async_trait::async_trait;
use bytes::Bytes;
use futures::sink::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::PgWireBackendMessage;
use std::fmt::Debug;

/// The protocol's overall format code for text and CSV data (binary would be 1).
const TEXTUAL: i8 = 0;

#[async_trait]
impl CopyHandler for Backend {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.run(|session| session.copy_data(&copy_data.data))
            .map_err(user_error)
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self
            .run(|session| session.copy_done())
            .map_err(user_error)?;
        let tag = Tag::new(&result.tag);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        user_error(self.run(|session| session.copy_fail(&fail.message)))
    }
}

/// The response that starts a COPY FROM STDIN's data (pgwire then waits for it).
pub fn copy_in_response(columns: usize) -> Response {
    Response::CopyIn(CopyResponse::new(
        TEXTUAL,
        columns,
        futures::stream::empty(),
    ))
}

/// A COPY TO STDOUT behind other statements' responses of the same query string:
/// pgwire's stream keeps the order (its `COPY n` would count a header line).
pub fn copy_out_response(columns: usize, lines: &[String]) -> Response {
    let data: Vec<PgWireResult<CopyData>> = lines
        .iter()
        .map(|line| Ok(CopyData::new(Bytes::from(line.clone().into_bytes()))))
        .collect();
    Response::CopyOut(CopyResponse::new(
        TEXTUAL,
        columns,
        futures::stream::iter(data),
    ))
}

/// Sends a COPY TO STDOUT's data to `client` and returns the command's completion.
/// Any other result is returned untouched.
pub async fn send_copy_out<C>(client: &mut C, mut result: QueryResult) -> PgWireResult<QueryResult>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(result.copy, Some(CopyResult::Data { .. })) {
        return Ok(result);
    }
    let Some(CopyResult::Data { columns, lines, .. }) = result.copy.take() else {
        return Ok(result);
    };
    let columns = i16::try_from(columns).unwrap_or(i16::MAX);
    let start = CopyOutResponse::new(TEXTUAL, columns, vec![0; columns as usize]);
    client
        .feed(PgWireBackendMessage::CopyOutResponse(start))
        .await?;
    for line in lines {
        let data = CopyData::new(Bytes::from(line.into_bytes()));
        client.feed(PgWireBackendMessage::CopyData(data)).await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(result)
}
