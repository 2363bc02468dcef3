//! The SQLite and PostgreSQL migrations must describe the same schema.
//!
//! Each adapter owns its migrations (the SQL dialects differ), so nothing but this test keeps
//! them in step. It needs no database: both migration texts are parsed by a deliberately small
//! normalizer into tables (columns in order, with a normalized type, NOT NULL-ness and the rest
//! of the definition), table constraints and indexes (name, table, columns, uniqueness,
//! predicate), and the two results must be equal. `ALTER TABLE … ADD COLUMN` appends a column,
//! as both databases do; `DROP TABLE` removes a table with its indexes; statements that move
//! data (`INSERT`, `UPDATE`, `DELETE`) change no schema and are skipped. The one accepted
//! difference is
//! `COLLATE "C"` on PostgreSQL columns, which gives them the byte-wise ordering SQLite's TEXT
//! has anyway (see the PostgreSQL migration's header). A statement the normalizer does not know
//! fails the test, so a new kind of migration statement extends this test instead of slipping
//! past it.

#![expect(clippy::expect_used, reason = "a test stops at the first broken expectation, loudly")]

use std::collections::BTreeMap;

/// One column as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// `BIGINT`, `TEXT`, `BOOLEAN`, … (aliases folded).
    ty: String,
    /// Declared `NOT NULL` or part of the primary key.
    not_null: bool,
    /// Everything after the type (PRIMARY KEY, UNIQUE, DEFAULT, CHECK, REFERENCES …), normalized.
    rest: String,
}

/// One table: its columns in declaration order and its table-level constraints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Table {
    columns: Vec<Column>,
    constraints: Vec<String>,
}

/// One index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    table: String,
    columns: Vec<String>,
    unique: bool,
    /// The partial index's `WHERE` predicate, normalized.
    predicate: Option<String>,
}

/// A schema: tables and indexes by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
}

/// Collapses runs of whitespace to one space, uppercases everything outside string literals,
/// and drops the space before `(` and `,` and after `(` (and before `)`), so that line breaks,
/// indentation and the spacing of keywords and parentheses do not make two schemas differ.
fn normalize(sql: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut pending_space = false;
    for ch in sql.chars() {
        if in_string {
            out.push(ch);
            in_string = ch != '\'';
            continue;
        }
        if ch.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() && !out.ends_with('(') && !matches!(ch, '(' | ')' | ',') {
            out.push(' ');
        }
        pending_space = false;
        in_string = ch == '\'';
        out.extend(ch.to_uppercase());
    }
    out
}

/// Removes `-- …` comments (the migrations have no `--` inside string literals).
fn strip_comments(sql: &str) -> String {
    sql.lines().map(|line| line.split_once("--").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(body: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0i32, String::new());
    for ch in body.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_string());
    }
    parts
}

/// The text between the first `(` and its matching `)`, and what follows it.
fn parenthesized(s: &str) -> (String, String) {
    let start = s.find('(').expect("an opening parenthesis");
    let mut depth = 0;
    for (i, ch) in s[start..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (s[start + 1..start + i].to_string(), s[start + i + 1..].trim().to_string());
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in `{s}`");
}

fn normalize_type(ty: &str) -> String {
    match ty {
        "INT8" => "BIGINT".into(),
        "BOOL" => "BOOLEAN".into(),
        "VARCHAR" => "TEXT".into(),
        // SQLite's rowid alias `INTEGER PRIMARY KEY` is PostgreSQL's identity column (see below).
        "INTEGER" => "BIGINT".into(),
        "BLOB" => "BYTEA".into(),
        other => other.into(),
    }
}

fn parse_column(def: &str) -> Column {
    // An identity column generates its values as SQLite's `INTEGER PRIMARY KEY` does.
    // SQLite's AUTOINCREMENT (ids never reused) is what an identity column does anyway.
    let def = def
        .replace(" COLLATE \"C\"", "")
        .replace(" GENERATED ALWAYS AS IDENTITY", "")
        .replace(" PRIMARY KEY AUTOINCREMENT", " PRIMARY KEY");
    let mut words = def.splitn(3, ' ');
    let name = words.next().expect("a column name").to_lowercase();
    let ty = normalize_type(words.next().unwrap_or_else(|| panic!("column `{name}` has a type")));
    let rest = words.next().unwrap_or("").to_string();
    let not_null = rest.contains("NOT NULL") || rest.contains("PRIMARY KEY");
    Column { name, ty, not_null, rest }
}

/// Parses a migration text into a schema.
fn parse(sql: &str) -> Schema {
    let mut schema = Schema::default();
    for statement in strip_comments(sql).split(';').map(normalize).filter(|s| !s.is_empty()) {
        if let Some(rest) = statement.strip_prefix("CREATE TABLE ") {
            let name = rest.split([' ', '(']).next().expect("a table name").to_lowercase();
            let (body, after) = parenthesized(rest);
            assert!(after.is_empty(), "unexpected table options on {name}: `{after}`");
            let mut table = Table::default();
            for item in split_top_level(&body) {
                let is_constraint =
                    ["PRIMARY KEY", "UNIQUE", "CHECK", "FOREIGN KEY", "CONSTRAINT"].iter().any(|k| item.starts_with(k));
                if is_constraint {
                    table.constraints.push(item);
                } else {
                    table.columns.push(parse_column(&item));
                }
            }
            // A composite primary key makes its columns NOT NULL too.
            for constraint in &table.constraints {
                if let Some(cols) = constraint.strip_prefix("PRIMARY KEY") {
                    let (cols, _) = parenthesized(cols);
                    for col in split_top_level(&cols) {
                        let col = col.to_lowercase();
                        let column = table.columns.iter_mut().find(|c| c.name == col).expect("a key column");
                        column.not_null = true;
                    }
                }
            }
            assert!(schema.tables.insert(name.clone(), table).is_none(), "table {name} created twice");
        } else if statement.starts_with("CREATE INDEX ") || statement.starts_with("CREATE UNIQUE INDEX ") {
            let unique = statement.starts_with("CREATE UNIQUE");
            let rest = statement.split_once("INDEX ").expect("INDEX").1;
            let (name, rest) = rest.split_once(" ON ").expect("an index name and ON");
            let table = rest.split([' ', '(']).next().expect("a table name").to_lowercase();
            let (cols, after) = parenthesized(rest);
            let predicate = match after.strip_prefix("WHERE ") {
                Some(p) => Some(p.to_string()),
                None if after.is_empty() => None,
                None => panic!("unexpected index clause on {name}: `{after}`"),
            };
            let index = Index {
                table,
                columns: split_top_level(&cols).into_iter().map(|c| c.to_lowercase()).collect(),
                unique,
                predicate,
            };
            assert!(schema.indexes.insert(name.to_lowercase(), index).is_none(), "index {name} created twice");
        } else if let Some(rest) = statement.strip_prefix("ALTER TABLE ") {
            let (name, column) = rest.split_once(" ADD COLUMN ").expect("only ALTER TABLE … ADD COLUMN is known");
            let table = schema.tables.get_mut(&name.to_lowercase()).expect("ALTER TABLE of a known table");
            let column = parse_column(column);
            assert!(table.columns.iter().all(|c| c.name != column.name), "column {name}.{} added twice", column.name);
            // Appended, as both databases do.
            table.columns.push(column);
        } else if let Some(name) = statement.strip_prefix("DROP TABLE ") {
            let name = name.trim().to_lowercase();
            assert!(schema.tables.remove(&name).is_some(), "DROP TABLE of an unknown table {name}");
            // Its indexes go with it, as in both databases.
            schema.indexes.retain(|_, index| index.table != name);
        } else if ["INSERT INTO ", "UPDATE ", "DELETE FROM "].iter().any(|k| statement.starts_with(k)) {
            // Moving data (a data migration) changes no schema.
        } else {
            panic!("the schema normalizer does not know this statement; extend tests/schema.rs: `{statement}`");
        }
    }
    schema
}

/// All migrations of an adapter, in order, as one text.
fn schema_of(migrations: &[(i64, &str, &str)]) -> Schema {
    parse(&migrations.iter().map(|(_, _, sql)| *sql).collect::<Vec<_>>().join(";\n"))
}

fn versions(migrations: &[(i64, &str, &str)]) -> Vec<(i64, String)> {
    migrations.iter().map(|(v, name, _)| (*v, (*name).to_string())).collect()
}

#[test]
fn both_adapters_have_the_same_migrations() {
    assert_eq!(versions(genai_store_sqlite::migrations()), versions(genai_store_postgres::migrations()));
}

#[test]
fn sqlite_and_postgres_migrations_describe_the_same_schema() {
    let sqlite = schema_of(genai_store_sqlite::migrations());
    let postgres = schema_of(genai_store_postgres::migrations());
    assert!(sqlite.tables.len() >= 8, "the normalizer found the tables: {:?}", sqlite.tables.keys());
    let names = |s: &Schema| s.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "the same tables");
    for (name, table) in &sqlite.tables {
        let other = &postgres.tables[name];
        let columns = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(columns(table), columns(other), "columns of {name}, in order");
        for (a, b) in table.columns.iter().zip(&other.columns) {
            assert_eq!(a, b, "column {name}.{}", a.name);
        }
        assert_eq!(table.constraints, other.constraints, "table constraints of {name}");
    }
    assert_eq!(sqlite.indexes, postgres.indexes, "the same indexes");
    assert_eq!(sqlite, postgres);
}

/// The normalizer is what the comparison rests on: it must see the facts it claims to compare.
#[test]
fn the_normalizer_sees_types_nullability_and_indexes() {
    let schema = parse(
        "-- a comment; with a semicolon\n\
         CREATE TABLE t (\n  id TEXT COLLATE \"C\" PRIMARY KEY,\n  n   bigint NOT NULL DEFAULT 0 CHECK (n >= 0),\n  \
         note text,\n  k TEXT NOT NULL,\n  PRIMARY KEY (k)\n);\n\
         CREATE UNIQUE INDEX t_live ON t (k, n) WHERE note <> 'x  y';",
    );
    let t = &schema.tables["t"];
    let col = |n: &str| t.columns.iter().find(|c| c.name == n).expect("column");
    assert_eq!(t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "n", "note", "k"]);
    assert_eq!((col("id").ty.as_str(), col("id").not_null, col("id").rest.as_str()), ("TEXT", true, "PRIMARY KEY"));
    assert_eq!((col("n").ty.as_str(), col("n").not_null), ("BIGINT", true));
    assert_eq!(col("n").rest, "NOT NULL DEFAULT 0 CHECK(N >= 0)");
    assert!(!col("note").not_null);
    assert!(col("k").not_null, "a primary-key column is NOT NULL");
    assert_eq!(
        schema.indexes["t_live"],
        Index {
            table: "t".into(),
            columns: vec!["k".into(), "n".into()],
            unique: true,
            predicate: Some("NOTE <> 'x  y'".into()),
        }
    );

    // Differences that matter are seen.
    let base = "CREATE TABLE t (a TEXT NOT NULL, b BIGINT); CREATE INDEX t_a ON t (a);";
    let differs = |other: &str| parse(base) != parse(other);
    assert!(!differs("CREATE TABLE t (\n a text NOT NULL,\n b BIGINT\n);\nCREATE INDEX t_a ON t (a);"));
    assert!(differs("CREATE TABLE t (a TEXT, b BIGINT); CREATE INDEX t_a ON t (a);"), "NOT NULL");
    assert!(differs("CREATE TABLE t (b BIGINT, a TEXT NOT NULL); CREATE INDEX t_a ON t (a);"), "order");
    assert!(differs("CREATE TABLE t (a TEXT NOT NULL, b TEXT); CREATE INDEX t_a ON t (a);"), "type");
    assert!(differs("CREATE TABLE t (a TEXT NOT NULL, b BIGINT); CREATE UNIQUE INDEX t_a ON t (a);"), "unique");
    assert!(differs("CREATE TABLE t (a TEXT NOT NULL, b BIGINT); CREATE INDEX t_a ON t (a, b);"), "columns");
    assert!(differs("CREATE TABLE t (a TEXT NOT NULL, b BIGINT); CREATE INDEX t_a ON t (a) WHERE b > 0;"), "partial");

    // A column added later is appended to its table, with its facts.
    // A dropped table takes its indexes along; data statements change nothing.
    let dropped = parse(
        "CREATE TABLE t (a TEXT); CREATE INDEX t_a ON t (a); CREATE TABLE u (b TEXT); \
         INSERT INTO u (b) SELECT a FROM t WHERE a <> 'x'; DROP TABLE t;",
    );
    assert_eq!(dropped.tables.keys().collect::<Vec<_>>(), ["u"]);
    assert!(dropped.indexes.is_empty());
    let added = parse("CREATE TABLE t (a TEXT NOT NULL); ALTER TABLE t ADD COLUMN b BIGINT NOT NULL DEFAULT 0;");
    assert_eq!(added.tables["t"].columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(added.tables["t"].columns[1].not_null);
    assert!(
        parse("CREATE TABLE t (a TEXT NOT NULL); ALTER TABLE t ADD COLUMN b BIGINT;") != added,
        "NOT NULL of an added column"
    );
}
