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
    /// Rows a LIMIT above wants, if known: each shard reads about that many first.
    rows_wanted: Option<u64>,
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
            rows_wanted: None,
            scan: None,
        }
    }

    /// Reads about `rows` rows from each shard first when a LIMIT wants that many.
    pub fn wanting(mut self, rows: Option<u64>) -> ScanExecutor {
        self.rows_wanted = rows;
        self
    }
}

impl Executor for ScanExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        let scan = match &mut self.scan {
            Some(scan) => scan,
            None => {
                let scan = txn.scan_rows(&self.table, &self.source);
                self.scan.insert(match self.rows_wanted {
                    Some(rows) => scan.wanting(rows),
                    None => scan,
                })
            }
        };
        txn.next_row(scan)
    }
}
