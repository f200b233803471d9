//! The vulnerability gate's inputs (issue 16): threshold, ignore file, unfixed findings and
//! the scan's timeout.

use std::path::PathBuf;

use super::{boolean, given, names, Args, InputError};

/// The vulnerability gate's inputs (issue 16). The ignore file is read and checked here, so
/// that a bad entry stops the run before anything is created; it is checked even when the
/// gate is `none`.
pub(super) fn vulnerability_gate(args: &Args) -> Result<Option<crate::gate::Policy>, InputError> {
    let threshold = match given(args.vulnerability_gate.as_ref()) {
        None => None,
        Some(text) if text.eq_ignore_ascii_case("none") => None,
        Some(text) => Some(
            text.parse::<crate::ecr::finding::Severity>()
                .map_err(|message| InputError::new(names::VULNERABILITY_GATE, message))?,
        ),
    };
    let ignore_file = given(args.vulnerability_ignore.as_ref()).map(PathBuf::from);
    let ignore = match &ignore_file {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                InputError::new(
                    names::VULNERABILITY_IGNORE,
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            crate::gate::ignore::parse(&text).map_err(|message| {
                InputError::new(
                    names::VULNERABILITY_IGNORE,
                    format!("`{}`: {message}", path.display()),
                )
            })?
        }
    };
    let ignore_unfixed = boolean(
        names::VULNERABILITY_IGNORE_UNFIXED,
        args.vulnerability_ignore_unfixed.as_ref(),
        false,
    )?;
    let timeout = match given(args.scan_timeout.as_ref()) {
        None => crate::gate::DEFAULT_TIMEOUT,
        Some(text) => crate::gate::parse_timeout(text)
            .map_err(|message| InputError::new(names::SCAN_TIMEOUT, message))?,
    };
    Ok(threshold.map(|threshold| crate::gate::Policy {
        threshold,
        ignore_file,
        ignore,
        ignore_unfixed,
        timeout,
    }))
}
