//! Table access: the executor names the rows it wants (a plan's access path) and the
//! transaction reads them, shard by shard through the router, overlaid with its own
//! writes (see [`crate::txn::RowScan`]). Nothing here knows keys, shards or groups.

use super::Executor;
use crate::catalog::Table;
use crate::error::Result;
use crate::sql::planner::plan::AccessPath;
use crate::txn::{RowScan, RowSource, Transaction};
use crate::types::Value;

/// Reads a table by one access path.
pub struct ScanExecutor {
    table: Table,
    source: RowSource,
    /// Started on the first call, when the transaction is at hand.
    scan: Option<RowScan>,
}

impl ScanExecutor {
    /// Prepares a scan of `table` along `access`.
    pub fn new(table: Table, access: &AccessPath) -> ScanExecutor {
        let source = match access {
            AccessPath::FullScan => RowSource::All,
            AccessPath::PrimaryKey(ranges) => RowSource::PrimaryKey(ranges.clone()),
            AccessPath::Index(index, ranges) => RowSource::Index(index.clone(), ranges.clone()),
        };
        ScanExecutor {
            table,
            source,
            scan: None,
        }
    }
}

impl Executor for ScanExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        let scan = match &mut self.scan {
            Some(scan) => scan,
            None => self.scan.insert(txn.scan_rows(&self.table, &self.source)),
        };
        txn.next_row(scan)
    }
}
