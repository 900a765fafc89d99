//! The JSON Python sends for heads and branches, parsed into specs in the order given.

use crate::error::{Error, Result};
use crate::model::branch::BranchSpec;
use crate::model::heads::HeadSpec;

/// `heads_json`: an object of name -> HeadSpec, at least one.
pub(super) fn parse_head_specs(heads_json: &str) -> Result<Vec<(String, HeadSpec)>> {
    let map = parse_object(heads_json, "heads")?;
    if map.is_empty() {
        return Err(Error::Argument("at least one head is needed".into()));
    }
    map.into_iter()
        .map(|(name, value)| {
            let spec: HeadSpec =
                serde_json::from_value(value).map_err(|e| Error::Argument(format!("head {name:?}: {e}")))?;
            Ok((name, spec))
        })
        .collect()
}

/// `branches_json`: an object of name -> BranchSpec (may be empty).
pub(super) fn parse_branch_specs(branches_json: &str) -> Result<Vec<(String, BranchSpec)>> {
    parse_object(branches_json, "branches")?
        .into_iter()
        .map(|(name, value)| {
            let spec: BranchSpec = serde_json::from_value(value)
                .map_err(|e| Error::Argument(format!("branch {name:?}: {e}")))?;
            Ok((name, spec))
        })
        .collect()
}

/// Which branch each head reads (an index into `branches`), or None for the encoder's last layer.
pub(super) fn head_sources(
    heads: &[(String, HeadSpec)],
    branches: &[(String, BranchSpec)],
) -> Result<Vec<Option<usize>>> {
    heads
        .iter()
        .map(|(head, spec)| match &spec.branch {
            None => Ok(None),
            Some(wanted) => match branches.iter().position(|(name, _)| name == wanted) {
                Some(index) => Ok(Some(index)),
                None => {
                    let known: Vec<&str> = branches.iter().map(|(name, _)| name.as_str()).collect();
                    Err(Error::Argument(format!(
                        "head {head:?} reads branch {wanted:?}, which is not defined (branches: {known:?})"
                    )))
                }
            },
        })
        .collect()
}

fn parse_object(json: &str, what: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(json)
        .map_err(|e| Error::Argument(format!("{what} must be a JSON object of name -> spec ({e})")))
}
