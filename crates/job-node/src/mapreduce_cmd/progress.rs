//! Progress bars per phase (on a terminal; hidden otherwise).

use async_trait::async_trait;
use indicatif::ProgressBar;
use job_queue::mapreduce::{RunEvent, RunObserver, TaskProgress};

use crate::progress_bar::progress_bar;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Map,
    Reduce,
    Merge,
}

/// A [`RunObserver`] drawing one progress bar per phase on stderr, and
/// noting lost nodes above them.
#[derive(Debug)]
pub(crate) struct BarObserver {
    bar: Option<(Stage, ProgressBar)>,
}

impl Default for BarObserver {
    fn default() -> Self {
        BarObserver::new()
    }
}

impl BarObserver {
    /// No bar yet.
    pub(crate) fn new() -> Self {
        BarObserver { bar: None }
    }

    /// Shows `stage`'s bar at `done` of `total`, replacing another stage's.
    fn show(&mut self, stage: Stage, done: u32, total: u32) {
        if self.bar.as_ref().map(|(s, _)| *s) != Some(stage) {
            self.finish();
            let label = match stage {
                Stage::Map => "map",
                Stage::Reduce => "reduce",
                Stage::Merge => "merge",
            };
            self.bar = Some((stage, progress_bar(u64::from(total), label)));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_length(u64::from(total));
            bar.set_position(u64::from(done));
        }
    }

    fn show_tasks(&mut self, progress: &TaskProgress) {
        if progress.maps_done < progress.maps {
            self.show(Stage::Map, progress.maps_done, progress.maps);
        } else {
            self.show(Stage::Reduce, progress.reduces_done, progress.reduces);
        }
    }

    /// Removes the current bar.
    pub(crate) fn finish(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[async_trait]
impl RunObserver for BarObserver {
    async fn on_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Planned { maps, .. } => self.show(Stage::Map, 0, *maps),
            RunEvent::TaskFinished { progress, .. } => self.show_tasks(progress),
            RunEvent::NodeLost { node, progress } => {
                let note = format!("node {node} lost: producing its outputs again");
                match &self.bar {
                    Some((_, bar)) if !bar.is_hidden() => bar.println(note),
                    _ => eprintln!("{note}"),
                }
                self.show_tasks(progress);
            }
            RunEvent::OutputFetched { done, total } => self.show(Stage::Merge, *done, *total),
            _ => {}
        }
    }
}
