//! The `[workflows.NAME]` section: Amazon States Language definitions checked by the
//! state machine's parser.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::FunctionName;
use crate::manifest::WorkflowSpec;
use crate::manifest::parse::toml_values::{join, sorted};
use crate::manifest::parse::{Checker, WORKFLOW_KEYS};

impl Checker<'_> {
    /// `[workflows.NAME]` tables, each a `definition` (Amazon States Language JSON in a
    /// multi-line string) whose tasks name functions of this app.
    pub(super) fn workflows(
        &mut self,
        path: &str,
        value: &Value,
        functions: Option<&Table>,
    ) -> Option<BTreeMap<FunctionName, WorkflowSpec>> {
        let example = "[workflows.NAME] with definition = '''{ ... }'''";
        let table = self.table(path, value, example)?;
        let mut workflows = BTreeMap::new();
        let mut all_valid = true;
        for (name, value) in sorted(table) {
            let here = join(path, name);
            match self.workflow(&here, name, value, functions) {
                Some((name, workflow)) => {
                    workflows.insert(name, workflow);
                }
                None => all_valid = false,
            }
        }
        all_valid.then_some(workflows)
    }

    pub(super) fn workflow(
        &mut self,
        path: &str,
        name: &str,
        value: &Value,
        functions: Option<&Table>,
    ) -> Option<(FunctionName, WorkflowSpec)> {
        let name =
            FunctionName::new(name).map_err(|invalid| self.problem(path, format!("{invalid}; rename the table"))).ok();
        let table = self.table(path, value, "[workflows.NAME] with definition = '''{ ... }'''")?;
        self.unknown_keys(path, table, WORKFLOW_KEYS, &[]);
        let definition_path = join(path, "definition");
        let Some(text) = table.get("definition") else {
            self.problem(
                &definition_path,
                "required but missing; paste the Amazon States Language JSON as definition = '''{ ... }'''",
            );
            return None;
        };
        let fix = "write the JSON in a multi-line string: definition = '''{ ... }'''";
        let text = self.string(&definition_path, text, fix)?;
        let definition: serde_json::Value = match serde_json::from_str(text) {
            Ok(definition) => definition,
            Err(error) => {
                self.problem(&definition_path, format!("not valid JSON ({error}); paste the state machine's JSON"));
                return None;
            }
        };
        let machine = match crate::StateMachine::parse(&definition) {
            Ok(machine) => machine,
            Err(problems) => {
                for problem in problems {
                    self.problem(&definition_path, problem);
                }
                return None;
            }
        };
        let mut known = true;
        for function in machine.functions() {
            if !functions.is_some_and(|functions| functions.contains_key(&function)) {
                self.problem(
                    &definition_path,
                    format!(
                        "a Task runs function {function:?}, which this app does not define; add \
                         [functions.{function}] or fix the Resource"
                    ),
                );
                known = false;
            }
        }
        known.then_some((name?, WorkflowSpec { machine, definition }))
    }
}
