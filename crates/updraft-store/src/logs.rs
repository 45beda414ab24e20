//! Function output: appended in batches, searched with filters and followed by id.

use sqlx::Row;
use sqlx::any::AnyRow;
use updraft_model::{AppName, FunctionName, LogLevel};

use crate::records::{LogLine, LogLineRecord};
use crate::sql::{Backend, ROWS_PER_STATEMENT, parse_name, version_number};
use crate::{Store, StoreError};

/// Whose lines to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogScope {
    Function(FunctionName),
    /// Every function of an app.
    App(AppName),
    All,
}

/// Which log lines to read, oldest first.
#[derive(Debug, Clone)]
pub struct LogFilter {
    pub scope: LogScope,
    /// Only lines after this id (0: from the start).
    pub after: i64,
    /// Written at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Written before (ms since the epoch).
    pub until: Option<i64>,
    /// Only one invocation's lines.
    pub request_id: Option<String>,
    /// Only lines containing this text, ignoring ASCII case.
    pub grep: Option<String>,
    /// Only lines at this level or above.
    pub level: Option<LogLevel>,
    pub limit: i64,
    /// The last `limit` matching lines rather than the first.
    pub tail: bool,
}

impl LogFilter {
    /// One function's lines from the start, `limit` at a time.
    pub fn function(function: FunctionName, limit: i64) -> Self {
        Self {
            scope: LogScope::Function(function),
            after: 0,
            since: None,
            until: None,
            request_id: None,
            grep: None,
            level: None,
            limit,
            tail: false,
        }
    }
}

const COLUMNS: &str = "id, function, version, request_id, at, stream, line, level";

impl Store {
    /// Appends log lines in one transaction.
    pub async fn log_append(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO log_lines (function, version, request_id, at, stream, line, level) VALUES {}",
                self.backend.value_rows(chunk.len(), 7)
            );
            let mut query = sqlx::query(&sql);
            for line in chunk {
                query = query
                    .bind(line.function.as_str())
                    .bind(i64::from(line.version.0))
                    .bind(line.request_id.as_str())
                    .bind(line.at)
                    .bind(line.stream.as_str())
                    .bind(line.line.as_str())
                    .bind(line.level.number());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The lines `filter` selects, oldest first.
    pub async fn log_list(&self, filter: &LogFilter) -> Result<Vec<LogLineRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        match filter.scope {
            LogScope::Function(_) => conditions.push(format!("function = {}", param())),
            LogScope::App(_) => {
                conditions.push(format!("function IN (SELECT name FROM functions WHERE app = {})", param()))
            }
            LogScope::All => {}
        }
        conditions.push(format!("id > {}", param()));
        if filter.since.is_some() {
            conditions.push(format!("at >= {}", param()));
        }
        if filter.until.is_some() {
            conditions.push(format!("at < {}", param()));
        }
        if filter.request_id.is_some() {
            conditions.push(format!("request_id = {}", param()));
        }
        if filter.level.is_some() {
            conditions.push(format!("level >= {}", param()));
        }
        if filter.grep.is_some() {
            // SQLite's LIKE ignores ASCII case; PostgreSQL's needs ILIKE.
            let like = match self.backend {
                Backend::Sqlite => "LIKE",
                Backend::Postgres => "ILIKE",
            };
            conditions.push(format!("line {like} {} ESCAPE '\\'", param()));
        }
        let limit = param();
        let order = if filter.tail { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM log_lines WHERE {} ORDER BY id {order} LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        match &filter.scope {
            LogScope::Function(function) => query = query.bind(function.as_str()),
            LogScope::App(app) => query = query.bind(app.as_str()),
            LogScope::All => {}
        }
        query = query.bind(filter.after);
        for value in [filter.since, filter.until].into_iter().flatten() {
            query = query.bind(value);
        }
        if let Some(request_id) = &filter.request_id {
            query = query.bind(request_id.as_str());
        }
        if let Some(level) = filter.level {
            query = query.bind(level.number());
        }
        if let Some(text) = &filter.grep {
            query = query.bind(format!("%{}%", escape_like(text)));
        }
        let rows = query.bind(filter.limit.max(0)).fetch_all(&self.pool).await?;
        let mut lines = rows.iter().map(log_line).collect::<Result<Vec<_>, StoreError>>()?;
        if filter.tail {
            lines.reverse();
        }
        Ok(lines)
    }
}

/// `text` as a LIKE pattern matching itself (escape character `\`).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn log_line(row: &AnyRow) -> Result<LogLineRecord, StoreError> {
    Ok(LogLineRecord {
        id: row.try_get(0)?,
        line: LogLine {
            function: parse_name(row.try_get(1)?)?,
            version: version_number(row.try_get(2)?)?,
            request_id: row.try_get(3)?,
            at: row.try_get(4)?,
            stream: row.try_get(5)?,
            line: row.try_get(6)?,
            level: LogLevel::from_number(row.try_get::<i64, _>(7)?),
        },
    })
}
