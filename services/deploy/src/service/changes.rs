//! The changes of an app other than a deploy: a rollback to a version deployed before
//! (checked against the apps current now, loaded by the runners like a deploy) and a
//! delete. Each is fenced on the app's last event, as a deploy is.

use nr_contracts::events::{AppChange, AppUpdated};
use nr_contracts::requests::{DeleteReport, DeleteRequest, DeployReport, RollbackRequest};
use object_store::path::Path;

use super::{answer_by, not_found, Actor, Inner};
use crate::conflicts::AppFacts;
use crate::findings::Refused;
use crate::manifest::is_valid_app_name;

impl Inner {
    #[tracing::instrument(skip_all, fields(app = %req.app_name, version = %req.version))]
    pub(super) async fn rollback(&self, req: RollbackRequest) -> Result<DeployReport, Refused> {
        let app = req.app_name;
        let history = self.history(&app).await?;
        let Some((last_seq, current)) = history.last().cloned() else {
            return Err(not_found(&app));
        };
        let target = history.iter().rev().find(|(_, ev)| {
            ev.change != AppChange::Deleted
                && ev.version == req.version
                && req.sha256.as_ref().is_none_or(|s| *s == ev.sha256)
        });
        let Some((_, target)) = target.cloned() else {
            let mut known: Vec<&str> = history
                .iter()
                .filter(|(_, e)| e.change != AppChange::Deleted)
                .map(|(_, e)| e.version.as_str())
                .collect();
            // A version made current again (a rollback) is named once.
            let mut seen = std::collections::HashSet::new();
            known.retain(|v| seen.insert(*v));
            let which = match &req.sha256 {
                Some(s) => format!("version {:?} with sha256 {s}", req.version),
                None => format!("version {:?}", req.version),
            };
            return Err(Refused::one(
                404,
                "rollback.version",
                None,
                None,
                format!(
                    "app {app:?} has no {which}; its versions are: {}",
                    known.join(", ")
                ),
            ));
        };
        // A version stored before the manifest had one type may not parse as it now;
        // putting it back would publish an event every service skips.
        if let Err(e) = nr_contracts::manifest::Manifest::from_value(&target.manifest) {
            return Err(Refused::one(
                422,
                "rollback.manifest",
                Some("manifest.json"),
                None,
                format!(
                    "{app} {} cannot be put back: its {e}; deploy a corrected bundle instead",
                    target.version
                ),
            ));
        }
        let path = Path::from(target.bundle_key.as_str());
        if let Err(e) = self.store.head(&path).await {
            return Err(match e {
                object_store::Error::NotFound { .. } => Refused::one(
                    409,
                    "rollback.bundle",
                    None,
                    None,
                    format!("the bundle of {app} {} ({}) is no longer in the object store; deploy it again", target.version, target.bundle_key),
                ),
                other => Refused::internal(format!("cannot read {}: {other}", target.bundle_key)),
            });
        }
        let warnings = self
            .cross_app(&app, &AppFacts::from_manifest(&target.manifest))
            .await?;
        let previous_version =
            (current.change != AppChange::Deleted).then(|| current.version.clone());
        let actor = Actor {
            name: req.actor,
            id: req.actor_id,
            answer_by: answer_by(req.deadline_ms),
        };
        let event = AppUpdated {
            app_name: app.clone(),
            change: AppChange::RolledBack,
            version: target.version.clone(),
            sha256: target.sha256.clone(),
            bundle_key: target.bundle_key.clone(),
            manifest: target.manifest.clone(),
            previous_version: previous_version.clone(),
            actor: actor.name.clone(),
            actor_id: actor.id.clone(),
            undoes: None,
        };
        let mut warnings = warnings;
        let (rev, loaded_by) = self
            .publish_loaded(event, last_seq, Some(current), actor, &mut warnings)
            .await?;
        tracing::info!(rev, "rolled back");
        Ok(DeployReport {
            app_name: app,
            version: target.version,
            sha256: target.sha256,
            previous_version,
            rev,
            warnings,
            loaded_by,
        })
    }

    #[tracing::instrument(skip_all, fields(app = %req.app_name))]
    pub(super) async fn delete(&self, req: DeleteRequest) -> Result<DeleteReport, Refused> {
        let app = req.app_name;
        if !is_valid_app_name(&app) {
            return Err(not_found(&app));
        }
        let (last_seq, current) = self.last_event(&app).await.map_err(Refused::event_log)?;
        let current = match current {
            Some(c) if c.change != AppChange::Deleted => c,
            _ => return Err(not_found(&app)),
        };
        let version = current.version.clone();
        let event = AppUpdated {
            change: AppChange::Deleted,
            previous_version: Some(current.version.clone()),
            actor: req.actor,
            actor_id: req.actor_id,
            undoes: None,
            ..current
        };
        let rev = self.publish(event, last_seq).await?;
        tracing::info!(rev, "deleted");
        Ok(DeleteReport {
            app_name: app,
            version,
            rev,
        })
    }
}
