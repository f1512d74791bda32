//! An order's state, as stored (`orders.state`, TEXT with a CHECK on both backends) and shown.

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum OrderState {
    /// Charged and taken from stock; its door's unlock is not settled yet.
    Paid,
    /// The door opened: the goods are the buyer's.
    Completed,
    /// The door did not open: money and stock given back.
    Cancelled,
}

impl OrderState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Paid, Self::Completed, Self::Cancelled];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for OrderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_one_name() {
        let names: Vec<&str> = OrderState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["paid", "completed", "cancelled"]);
    }
}
