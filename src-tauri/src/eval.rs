//! Evaluation results in Statistics, and "Run evaluation": the built-in question sets over
//! the installed chat models in single mode, progress streamed through a Tauri channel,
//! cancellable. Scores, intervals and runs come from the store and `baton-eval`.

use crate::dto::{AppError, EvalProgressInfo, EvalReportInfo, EvalRunInfo, EvalScoreInfo};
use crate::state::AppState;
use baton_runtime::{EvalPlan, EvalProgress, Mode};
use std::sync::atomic::{AtomicU32, Ordering};
use tauri::ipc::Channel;
use tauri::State;

type Res<T> = Result<T, AppError>;

/// The key under which a running evaluation's cancellation token is kept.
const EVAL_KEY: &str = "eval";
/// How many runs the list shows.
const RUN_LIMIT: u32 = 20;

/// The latest score of every model × mode × domain (and `all`), with 95% intervals.
#[tauri::command]
#[specta::specta]
pub async fn eval_scores(state: State<'_, AppState>) -> Res<Vec<EvalScoreInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .eval_scores()
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// The most recent evaluation runs, newest first.
#[tauri::command]
#[specta::specta]
pub async fn eval_runs(state: State<'_, AppState>) -> Res<Vec<EvalRunInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .eval_runs(RUN_LIMIT)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Runs the built-in question sets (at most `limit` questions each) over every installed
/// chat model in single mode, as `baton eval --limit N` does, reporting each scored answer
/// through `on_progress`. Every answer is stored as it is scored, so a cancelled run keeps
/// what it measured.
#[tauri::command]
#[specta::specta]
pub async fn start_eval(
    state: State<'_, AppState>,
    limit: Option<u32>,
    on_progress: Channel<EvalProgressInfo>,
) -> Res<EvalReportInfo> {
    let rt = state.runtime()?;
    let targets = rt.eval_targets(&[], &[Mode::Single]).await?;
    let models: Vec<String> = targets.iter().map(|t| t.model.clone()).collect();
    let plan = EvalPlan {
        sets: baton_eval::builtin_sets(),
        targets,
        limit: limit.map(|n| n as usize),
    };
    let cancel = state.begin(EVAL_KEY).map_err(|_| {
        AppError::new(
            "busy",
            "an evaluation is already running; cancel it or wait for it",
        )
    })?;
    let passed = AtomicU32::new(0);
    let send = |e: EvalProgressInfo| {
        if let Err(e) = on_progress.send(e) {
            tracing::debug!(error = %e, "the window stopped listening to an evaluation");
        }
    };
    let report = |p: EvalProgress| match p {
        EvalProgress::Started { run_id, total } => send(EvalProgressInfo::Started {
            run_id: run_id as f64,
            total: total as u32,
            models: models.clone(),
        }),
        EvalProgress::Scored {
            done,
            total,
            result,
        } => {
            let result = *result;
            let so_far = passed.fetch_add(u32::from(result.passed), Ordering::SeqCst)
                + u32::from(result.passed);
            send(EvalProgressInfo::Scored {
                done: done as u32,
                total: total as u32,
                passed: so_far,
                model: result.model,
                item_id: result.item_id,
                domain: result.domain,
                ok: result.passed,
            });
        }
    };
    let result = rt.run_eval(&plan, &report, cancel).await;
    state.finish(EVAL_KEY);
    let report = result?;
    Ok(EvalReportInfo {
        run_id: report.run_id as f64,
        answers: report.results.len() as u32,
        passed: report.results.iter().filter(|r| r.passed).count() as u32,
        cancelled: report.cancelled,
    })
}

/// Cancels the running evaluation; false when none runs. What was scored stays.
#[tauri::command]
#[specta::specta]
pub fn cancel_eval(state: State<'_, AppState>) -> bool {
    state.cancel(EVAL_KEY)
}
