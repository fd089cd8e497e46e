//! Learning-rate schedules counted in tokens (not steps), so changing the batch size does not
//! change the schedule's shape. The schedule is plain data of the recipe ([`syne_recipe::train`]).

pub use syne_recipe::train::LrSchedule;
