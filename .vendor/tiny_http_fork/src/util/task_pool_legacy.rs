use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::{io, thread};
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool 
{
    sharing: Arc<Sharing>,

    // min number of threads
    min_threads: usize,

    // bully patch: max number of threads; `None` is unbounded as before
    max_threads: Option<usize>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,
}



struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }

    /// bully patch: takes over a count made earlier, by another thread.
    fn adopt(nb: &'a AtomicUsize) -> Registration<'a> {
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {

    /// Minimum number of active threads.
    const MIN_THREADS: usize = 4;

    /// bully patch: most threads kept waiting for work beyond `min_threads`.
    const MAX_IDLE: usize = 2;

    pub fn new(min_threads_opt: Option<usize>, max_threads_opt: Option<usize>) -> io::Result<TaskPool> {

        let min_threads = min_threads_opt.unwrap_or(Self::MIN_THREADS);

        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
            }),
            min_threads,
            max_threads: max_threads_opt,
        };

        

        for _ in 0..min_threads {
            pool.add_thread(None)
        }

        return Ok(pool);
    }

    /// bully patch: true when a new task would need a new thread and `max_threads` are
    /// running. The accept thread (the only caller of `spawn`) asks before it hands over a
    /// connection, so a flood of connections can no longer grow one thread per connection
    /// without bound.
    pub fn saturated(&self) -> bool {
        let Some(max) = self.max_threads else {
            return false;
        };
        let queue = self.sharing.todo.lock().unwrap_or_else(|e| e.into_inner());
        self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len()
            && self.sharing.active_tasks.load(Ordering::Acquire) >= max
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) -> io::Result<()> {
        let mut queue = self.sharing.todo.lock().unwrap();

        // bully patch: queue only when an idle thread is left for this task. Comparing with 0
        // queued a burst of connections behind one waiting thread; when that thread's first
        // connection sat idle, the rest waited for it to time out.
        if self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len() {
            self.add_thread(Some(code));
        } else {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
        }

        return Ok(());
    }

    fn add_thread(&self, initial_fn: Option<Box<dyn FnMut() + Send>>) {
        let sharing = self.sharing.clone();
        let min_threads = self.min_threads;

        // bully patch: the thread is counted before it starts, not once it runs: a burst of
        // connections otherwise saw a stale count and went past `max_threads`.
        self.sharing.active_tasks.fetch_add(1, Ordering::Release);

        // bully patch: `thread::spawn` panicked when the system refused a thread, killing the
        // accept thread; now the task (a connection) is dropped, which closes it.
        let spawned = thread::Builder::new().spawn(move || {
            let sharing = sharing;
            let _active_guard = Registration::adopt(&sharing.active_tasks);

            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap();

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        // bully patch: at most MAX_IDLE threads wait for work. Each new task
                        // woke one waiter and so restarted its idle timeout: a trickle of
                        // connections (health checks) kept every thread a flood had started
                        // alive for good.
                        if sharing.waiting_tasks.load(Ordering::Acquire) >= Self::MAX_IDLE
                            && sharing.active_tasks.load(Ordering::Acquire) > min_threads
                        {
                            return;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= min_threads {
                                todo = sharing.condvar.wait(todo).unwrap();
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap();
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        });
        if let Err(_e) = spawned {
            self.sharing.active_tasks.fetch_sub(1, Ordering::Release);
            crate::log::error!("cannot start a connection thread: {}", _e);
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
