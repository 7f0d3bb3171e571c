//! `docs/protocol.md` against the code: its table of control operations
//! (§2.2) must list exactly `CtlOperation::ALL`, its table of event
//! types (§7.3) exactly `EventType::ALL`, each with its data type, and its
//! table of wadm operations (§12.2) exactly `ModelOperation::ALL`, in
//! order, each with its scope.

use std::any::type_name;
use std::collections::BTreeSet;

use trellis_protocol::event::{
    ActorFailedData, ActorScaledData, ActorStartedData, ActorStoppedData, ActorUpdatedData,
    HealthCheckFailedData, HealthCheckPassedData, HostStartedData, HostStoppedData,
    LabelsChangedData, LatticeDataRejectedData, LinkDeletedData, LinkSetData, ProviderFailedData,
    ProviderStartedData, ProviderStoppedData,
};
use trellis_protocol::subject::{CTL_PREFIX, CtlOperation};
use trellis_protocol::wadm::ModelOperation;
use trellis_protocol::{EventData, EventType, Heartbeat};

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The cells of one table row, trimmed; `\|` inside a cell is not a border.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// Every table of the document: its header cells and its body rows.
fn tables(doc: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut tables = Vec::new();
    let mut lines = doc.lines().peekable();
    let mut in_code = false;
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.trim_start().starts_with('|') {
            continue;
        }
        let header = cells(line);
        let mut rows = Vec::new();
        while let Some(next) = lines.next_if(|l| l.trim_start().starts_with('|')) {
            let row = cells(next);
            if !row
                .iter()
                .all(|c| c.chars().all(|c| matches!(c, '-' | ':')))
            {
                rows.push(row);
            }
        }
        tables.push((header, rows));
    }
    tables
}

/// The one table whose header starts with `first` and `second`.
fn the_table(doc: &str, first: &str, second: &str) -> Vec<Vec<String>> {
    let mut found: Vec<_> = tables(doc)
        .into_iter()
        .filter(|(h, _)| h.first().map(String::as_str) == Some(first))
        .filter(|(h, _)| h.get(1).is_some_and(|c| c.starts_with(second)))
        .map(|(_, rows)| rows)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/protocol.md must have exactly one table headed `| {first} | {second}…`"
    );
    found.remove(0)
}

/// The text between the first pair of backticks of a cell.
fn code(cell: &str) -> &str {
    cell.split('`').nth(1).unwrap_or(cell)
}

/// The rows of the one table headed `first`, `second`…, after checking that
/// its first column names each of `known` exactly once and nothing else.
fn rows_naming(first: &str, second: &str, known: &BTreeSet<String>) -> Vec<Vec<String>> {
    let rows = the_table(&protocol_md(), first, second);
    let mut documented = BTreeSet::new();
    for row in &rows {
        let name = code(&row[0]).to_owned();
        assert!(
            documented.insert(name.clone()),
            "{first} {name} has two rows"
        );
    }
    assert_eq!(
        &documented,
        known,
        "{first}s in the code but without a row: {:?}; rows naming nothing in the code: {:?}",
        known.difference(&documented).collect::<Vec<_>>(),
        documented.difference(known).collect::<Vec<_>>()
    );
    rows
}

/// The row whose first column names `name`.
fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a [String] {
    rows.iter()
        .find(|r| code(&r[0]) == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

#[test]
fn the_operation_table_lists_every_control_operation() {
    let known: BTreeSet<String> = CtlOperation::ALL
        .iter()
        .map(|op| op.name().to_owned())
        .collect();
    let rows = rows_naming("operation", "subject", &known);
    for op in CtlOperation::ALL {
        let row = row(&rows, op.name());
        let subject = match op.host_id() {
            Some(_) => format!("{CTL_PREFIX}.default.{}.{{host_id}}", op.name()),
            None => format!("{CTL_PREFIX}.default.{}", op.name()),
        };
        assert_eq!(code(&row[1]), subject, "subject of {}", op.name());
        let addressed = &row[2];
        assert_eq!(
            addressed == "one host",
            op.host_id().is_some(),
            "{} is addressed to {addressed:?}",
            op.name()
        );
    }
}

/// The data type of each event type, by its short name.
fn data_types() -> Vec<(EventType, &'static str)> {
    fn entry<T: EventData>() -> (EventType, &'static str) {
        let name = type_name::<T>();
        (T::TYPE, name.rsplit("::").next().unwrap_or(name))
    }
    vec![
        entry::<HostStartedData>(),
        entry::<HostStoppedData>(),
        entry::<Heartbeat>(),
        entry::<ActorStartedData>(),
        entry::<ActorStoppedData>(),
        entry::<ActorFailedData>(),
        entry::<ActorScaledData>(),
        entry::<ActorUpdatedData>(),
        entry::<ProviderStartedData>(),
        entry::<ProviderStoppedData>(),
        entry::<ProviderFailedData>(),
        entry::<LinkSetData>(),
        entry::<LinkDeletedData>(),
        entry::<HealthCheckPassedData>(),
        entry::<HealthCheckFailedData>(),
        entry::<LabelsChangedData>(),
        entry::<LatticeDataRejectedData>(),
    ]
}

#[test]
fn the_event_table_lists_every_event_type_with_its_data() {
    let known: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    let rows = rows_naming("event type", "published when", &known);

    let types = data_types();
    assert_eq!(types.len(), EventType::ALL.len());
    let typed: BTreeSet<String> = types.iter().map(|(t, _)| t.as_str().to_owned()).collect();
    assert_eq!(
        typed, known,
        "data_types() must name one type per event type"
    );
    for (event_type, data) in types {
        let row = row(&rows, event_type.as_str());
        assert_eq!(
            code(&row[2]),
            data,
            "the data of {event_type} is `{data}`: its row must start with it"
        );
    }
}

#[test]
fn the_wadm_table_lists_every_model_operation() {
    let rows = the_table(&protocol_md(), "operation", "request");
    let documented: Vec<&str> = rows.iter().map(|r| code(&r[0])).collect();
    let expected: Vec<&str> = ModelOperation::ALL.map(|o| o.name()).to_vec();
    assert_eq!(
        documented, expected,
        "the wadm operation table must list ModelOperation::ALL, in order"
    );
    for (row, op) in rows.iter().zip(ModelOperation::ALL) {
        let scope = row
            .get(3)
            .map(|c| code(c))
            .unwrap_or_else(|| panic!("{} has no scope column", op.name()));
        assert_eq!(
            scope == "read",
            op.is_read_only(),
            "{} needs the {} scope, but its row says {scope:?}",
            op.name(),
            if op.is_read_only() { "read" } else { "full" }
        );
        if !op.is_read_only() {
            assert_eq!(scope, "full", "the scope of {}", op.name());
        }
    }
}
