//! The chat model choice: the welcome dialog at first start and Settings → Models. The
//! runtime rates every chat model for this machine (`chat_model_fits`) and keeps the
//! choice (`set_default_model`); the shell only remembers "Decide later".

use crate::dto::{AppError, ModelChoice};
use crate::state::{AppState, MODEL_CHOICE_KEY};
use tauri::State;

type Res<T> = Result<T, AppError>;

/// The chat models for this machine and where the person's choice stands.
#[tauri::command]
#[specta::specta]
pub async fn model_choice(state: State<'_, AppState>) -> Res<ModelChoice> {
    let rt = state.runtime()?;
    let fits = rt.chat_model_fits().await?;
    let configured = rt.config().chat.default_model.clone();
    let pinned = (configured != "auto").then_some(configured);
    let chosen = rt
        .store()
        .setting(baton_runtime::fit::DEFAULT_MODEL_SETTING)
        .await?
        .is_some();
    let deferred = rt.store().setting(MODEL_CHOICE_KEY).await?.is_some();
    let usable = fits.iter().filter(|f| f.fits).count();
    Ok(ModelChoice {
        // The list is best first: the first that fits is the best that fits.
        recommended: baton_runtime::fit::recommended(&fits).map(|f| f.name.clone()),
        current: rt.default_model(),
        ask: pinned.is_none() && !chosen && !deferred && usable > 1,
        pinned,
        chosen,
        machine: rt.machine_summary(),
        models: fits.into_iter().map(Into::into).collect(),
    })
}

/// Makes `name` the default chat model (it must be installed: the window fetches it first).
#[tauri::command]
#[specta::specta]
pub async fn choose_model(state: State<'_, AppState>, name: String) -> Res<ModelChoice> {
    let rt = state.runtime()?;
    rt.set_default_model(&name).await?;
    tracing::info!(model = %name, "default chat model chosen");
    model_choice(state).await
}

/// "Decide later": the welcome dialog is not shown again; Settings → Models still offers
/// the choice.
#[tauri::command]
#[specta::specta]
pub async fn defer_model_choice(state: State<'_, AppState>) -> Res<()> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .set_setting(MODEL_CHOICE_KEY, &serde_json::json!("later"))
        .await?)
}
