//! Which layers of the process sandbox this host can apply, found once at start: the
//! control-group controllers by the host, everything else by a probing jailer that
//! builds a whole sandbox and reports instead of running a program.
//!
//! A layer that is missing stops process functions from running (they are refused at
//! deploy and at start, naming the layer and the fix) unless the operator named it in
//! `--sandbox-allow-missing`; then it is shown as allowed-missing wherever the status
//! is shown. Nothing here fails open.

use std::fmt;

use crate::spec::{LayerCheck, SandboxLayer};

/// How one layer stands on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStatus {
    pub layer: SandboxLayer,
    pub state: LayerState,
    /// What is in place (`v1`, `ABI 7`, ...), or why it is not.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Applied to every instance.
    Ok,
    /// Missing, and the operator allowed it to be.
    AllowedMissing,
    /// Missing: process functions do not run.
    Missing,
}

impl LayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Ok => "ok",
            LayerState::AllowedMissing => "allowed-missing",
            LayerState::Missing => "missing",
        }
    }
}

/// Every layer's state on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    pub layers: Vec<LayerStatus>,
}

/// Process functions cannot run: layers are missing that the operator did not allow
/// to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SandboxIncomplete {
    pub missing: Vec<LayerStatus>,
}

impl fmt::Display for SandboxIncomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lambda functions cannot run on this host: the sandbox lacks ")?;
        for (index, layer) in self.missing.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({}; fix: {})", layer.layer, layer.detail, layer.layer.fix())?;
        }
        let overridable: Vec<&str> =
            self.missing.iter().filter(|l| l.layer.may_be_missing()).map(|l| l.layer.as_str()).collect();
        if !overridable.is_empty() {
            write!(
                f,
                ". To run them without it anyway, start the server with --sandbox-allow-missing {}",
                overridable.join(",")
            )?;
        }
        Ok(())
    }
}

impl SandboxStatus {
    /// Builds the status from the checks, in the order of [`SandboxLayer::ALL`]; a layer
    /// no check mentions is missing ("not checked").
    pub fn from_checks(checks: &[LayerCheck], allow_missing: &[SandboxLayer]) -> SandboxStatus {
        let layers = SandboxLayer::ALL
            .iter()
            .map(|&layer| {
                let check = checks.iter().find(|check| check.layer == layer);
                let (state, detail) = match check {
                    Some(LayerCheck { missing: None, detail, .. }) => (LayerState::Ok, detail.clone()),
                    Some(LayerCheck { missing: Some(reason), .. }) => {
                        (missing_state(layer, allow_missing), reason.clone())
                    }
                    None => (missing_state(layer, allow_missing), "not checked".to_owned()),
                };
                LayerStatus { layer, state, detail }
            })
            .collect();
        SandboxStatus { layers }
    }

    /// `Err` naming every missing layer the operator did not allow.
    pub fn check(&self) -> Result<(), SandboxIncomplete> {
        let missing: Vec<LayerStatus> =
            self.layers.iter().filter(|layer| layer.state == LayerState::Missing).cloned().collect();
        if missing.is_empty() { Ok(()) } else { Err(SandboxIncomplete { missing }) }
    }

    /// The layers instances run without, by the operator's leave.
    pub fn running_without(&self) -> Vec<SandboxLayer> {
        self.layers.iter().filter(|layer| layer.state == LayerState::AllowedMissing).map(|layer| layer.layer).collect()
    }

    pub fn is_ok(&self, layer: SandboxLayer) -> bool {
        self.layers.iter().any(|status| status.layer == layer && status.state == LayerState::Ok)
    }
}

fn missing_state(layer: SandboxLayer, allow_missing: &[SandboxLayer]) -> LayerState {
    if allow_missing.contains(&layer) && layer.may_be_missing() {
        LayerState::AllowedMissing
    } else {
        LayerState::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(layer: SandboxLayer, missing: Option<&str>) -> LayerCheck {
        LayerCheck { layer, missing: missing.map(str::to_owned), detail: "in place".into() }
    }

    #[test]
    fn a_missing_layer_refuses_process_functions_until_the_operator_allows_it() {
        let mut checks: Vec<LayerCheck> = SandboxLayer::ALL.iter().map(|layer| check(*layer, None)).collect();
        checks[4] = check(SandboxLayer::Landlock, Some("this kernel does not enforce Landlock"));
        let status = SandboxStatus::from_checks(&checks, &[]);
        let refused = status.check().unwrap_err().to_string();
        assert!(refused.contains("landlock (this kernel does not enforce Landlock; fix: boot a kernel"), "{refused}");
        assert!(refused.contains("--sandbox-allow-missing landlock"), "{refused}");

        let allowed = SandboxStatus::from_checks(&checks, &[SandboxLayer::Landlock]);
        assert_eq!(allowed.check(), Ok(()));
        assert_eq!(allowed.running_without(), [SandboxLayer::Landlock]);
    }

    #[test]
    fn namespaces_cannot_be_allowed_missing_and_unchecked_layers_are_missing() {
        let status = SandboxStatus::from_checks(&[], &[SandboxLayer::Namespaces, SandboxLayer::Seccomp]);
        let namespaces = &status.layers[0];
        assert_eq!((namespaces.layer, namespaces.state), (SandboxLayer::Namespaces, LayerState::Missing));
        assert_eq!(namespaces.detail, "not checked");
        assert!(
            status.layers.iter().any(|l| l.layer == SandboxLayer::Seccomp && l.state == LayerState::AllowedMissing)
        );
        let refused = status.check().unwrap_err().to_string();
        assert!(refused.contains("namespaces (not checked; fix: run the server as root"), "{refused}");
    }
}
