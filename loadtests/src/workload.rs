//! What the simulated users do: the REST routes, their mixes, and each user's pool of live
//! task ids (a task is taken out while a request works on it, so two concurrent requests
//! never race on one task, and a deleted task is never touched again).

use std::sync::Mutex;

use serde::Serialize;

use crate::sys::Rng;

/// The routes the load generator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Route {
    ListTasks,
    CreateTask,
    PatchTask,
    CompleteTask,
    DeleteTask,
    ListNotifications,
    UnreadCount,
}

impl Route {
    pub const ALL: [Route; 7] = [
        Route::ListTasks,
        Route::CreateTask,
        Route::PatchTask,
        Route::CompleteTask,
        Route::DeleteTask,
        Route::ListNotifications,
        Route::UnreadCount,
    ];

    /// The route as the API documents it.
    pub fn name(self) -> &'static str {
        match self {
            Route::ListTasks => "GET /tasks",
            Route::CreateTask => "POST /tasks",
            Route::PatchTask => "PATCH /tasks/{id}",
            Route::CompleteTask => "PATCH /tasks/{id}/complete",
            Route::DeleteTask => "DELETE /tasks/{id}",
            Route::ListNotifications => "GET /notifications",
            Route::UnreadCount => "GET /notifications/unread/count",
        }
    }

    /// Whether a call changes data (and so produces events).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Route::CreateTask | Route::PatchTask | Route::CompleteTask | Route::DeleteTask
        )
    }

    fn needs_task(self) -> bool {
        matches!(
            self,
            Route::PatchTask | Route::CompleteTask | Route::DeleteTask
        )
    }
}

/// Weighted routes.
#[derive(Debug, Clone, Serialize)]
pub struct Mix {
    pub name: &'static str,
    pub weights: Vec<(Route, u32)>,
}

impl Mix {
    /// A person using the app: mostly reading, some writing.
    pub fn realistic() -> Self {
        Self {
            name: "realistic",
            weights: vec![
                (Route::ListTasks, 25),
                (Route::CreateTask, 15),
                (Route::PatchTask, 12),
                (Route::CompleteTask, 10),
                (Route::DeleteTask, 5),
                (Route::ListNotifications, 18),
                (Route::UnreadCount, 15),
            ],
        }
    }

    /// Writes only: what the fan-out writers do.
    pub fn writes() -> Self {
        Self {
            name: "writes",
            weights: vec![
                (Route::CreateTask, 35),
                (Route::PatchTask, 25),
                (Route::CompleteTask, 25),
                (Route::DeleteTask, 15),
            ],
        }
    }

    /// Task creation only (the `limit` scenario's comparison with pgbench).
    pub fn creates() -> Self {
        Self {
            name: "create",
            weights: vec![(Route::CreateTask, 1)],
        }
    }

    pub fn pick(&self, rng: &mut Rng) -> Route {
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut roll = rng.below(total);
        for (route, weight) in &self.weights {
            if roll < u64::from(*weight) {
                return *route;
            }
            roll -= u64::from(*weight);
        }
        Route::CreateTask
    }
}

/// One request to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    ListTasks,
    CreateTask,
    PatchTask(i64),
    CompleteTask(i64),
    DeleteTask(i64),
    ListNotifications,
    UnreadCount,
}

impl Call {
    pub fn route(self) -> Route {
        match self {
            Call::ListTasks => Route::ListTasks,
            Call::CreateTask => Route::CreateTask,
            Call::PatchTask(_) => Route::PatchTask,
            Call::CompleteTask(_) => Route::CompleteTask,
            Call::DeleteTask(_) => Route::DeleteTask,
            Call::ListNotifications => Route::ListNotifications,
            Call::UnreadCount => Route::UnreadCount,
        }
    }
}

/// A user's live (not deleted) tasks that no request is working on right now.
#[derive(Debug, Default)]
pub struct TaskPool {
    ids: Mutex<Vec<i64>>,
}

impl TaskPool {
    fn take(&self, rng: &mut Rng) -> Option<i64> {
        let mut ids = self.ids.lock().ok()?;
        if ids.is_empty() {
            return None;
        }
        let i = rng.below(ids.len() as u64) as usize;
        Some(ids.swap_remove(i))
    }

    fn put(&self, id: i64) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.lock().map(|ids| ids.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call for `route`: one that needs a task takes one from the pool, or becomes a
    /// create when the pool is empty.
    pub fn plan(&self, route: Route, rng: &mut Rng) -> Call {
        if route.needs_task() {
            let Some(id) = self.take(rng) else {
                return Call::CreateTask;
            };
            return match route {
                Route::PatchTask => Call::PatchTask(id),
                Route::CompleteTask => Call::CompleteTask(id),
                _ => Call::DeleteTask(id),
            };
        }
        match route {
            Route::ListTasks => Call::ListTasks,
            Route::ListNotifications => Call::ListNotifications,
            Route::UnreadCount => Call::UnreadCount,
            _ => Call::CreateTask,
        }
    }

    /// Returns the call's task to the pool (or adds the created one), unless it is gone.
    pub fn settle(&self, call: Call, succeeded: bool, status: Option<u16>, created: Option<i64>) {
        match call {
            Call::CreateTask => {
                if let Some(id) = created {
                    self.put(id);
                }
            }
            // A task that is gone (404) or was deleted leaves the pool.
            Call::PatchTask(id) | Call::CompleteTask(id) if status != Some(404) => self.put(id),
            Call::DeleteTask(id) if !succeeded && status != Some(404) => self.put(id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_creates_until_there_are_tasks() {
        let pool = TaskPool::default();
        let mut rng = Rng::new(1);
        assert_eq!(pool.plan(Route::DeleteTask, &mut rng), Call::CreateTask);
        pool.settle(Call::CreateTask, true, Some(201), Some(7));
        assert_eq!(pool.plan(Route::PatchTask, &mut rng), Call::PatchTask(7));
        // Taken out while in flight.
        assert!(pool.is_empty());
        pool.settle(Call::PatchTask(7), true, Some(200), None);
        assert_eq!(pool.plan(Route::DeleteTask, &mut rng), Call::DeleteTask(7));
        pool.settle(Call::DeleteTask(7), true, Some(204), None);
        assert!(pool.is_empty());
    }

    #[test]
    fn mixes_pick_every_route_they_name() {
        let mut rng = Rng::new(3);
        let mix = Mix::realistic();
        let seen: std::collections::HashSet<Route> =
            (0..2000).map(|_| mix.pick(&mut rng)).collect();
        assert_eq!(seen.len(), Route::ALL.len());
        assert!((0..100).all(|_| Mix::creates().pick(&mut rng) == Route::CreateTask));
        assert!((0..100).all(|_| Mix::writes().pick(&mut rng).is_write()));
    }
}
