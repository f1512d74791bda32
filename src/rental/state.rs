//! A rental's state, as stored (`rentals.state`, TEXT with a CHECK on both backends) and shown.

/// Where a rental is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RentalState {
    /// Created with its deposit held; its door's unlock is not settled yet.
    Pending,
    /// The door opened: the rental runs and is billed.
    Active,
    /// Picked up: the pickup's unlock is not settled yet (billing stopped meanwhile).
    Ending,
    /// Picked up and paid.
    Ended,
    /// Never started (its door did not open) or cancelled by an operator; nothing charged.
    Cancelled,
}

impl RentalState {
    /// Every state, in the order of a rental's life.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Active,
        Self::Ending,
        Self::Ended,
        Self::Cancelled,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Ending => "ending",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the rental still holds its door (pending, active or ending).
    pub fn is_running(self) -> bool {
        matches!(self, Self::Pending | Self::Active | Self::Ending)
    }
}

impl std::fmt::Display for RentalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_one_name() {
        let names: Vec<&str> = RentalState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "active", "ending", "ended", "cancelled"]);
        let running: Vec<bool> = RentalState::ALL.iter().map(|s| s.is_running()).collect();
        assert_eq!(running, [true, true, true, false, false]);
    }
}
