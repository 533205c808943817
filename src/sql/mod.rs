//! SQL: text to statements (`parser`), statements to plans (`planner`), plans to rows
//! (`execution`). Each stage has its own types so the others do not depend on sqlparser.

pub mod admin;
pub mod ast;
pub mod copy;
pub mod execution;
pub mod parser;
pub mod planner;
