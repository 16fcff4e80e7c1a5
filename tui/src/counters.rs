//! Counters are declared once. [`counters!`] makes the struct, the sum of two instances (threads
//! that split the connections between them), and the list of `(name, value, kind)` that the
//! summary line, the dashboard's health and (later) the metrics endpoint read, so a new counter
//! is one line and is shown everywhere, and none can drift out of the summary again.

/// Whether a value only grows (a counter) or is a level right now (a gauge: open connections,
/// buffered bytes). Sums of gauges over threads are still the process's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One counter as shown: its name in the summary line, its value, its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub value: u64,
    pub kind: Kind,
}

/// Declares a struct of `u64` counters:
///
/// ```ignore
/// counters! {
///     /// Doc of the struct.
///     pub struct FlowStats {
///         /// Doc of the field.
///         connections: "connections" Counter,
///         open: "open" Gauge,
///     }
/// }
/// ```
///
/// The string is the name in the summary line (`name=value`).
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $label:literal $kind:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: u64, )*
        }

        impl ::std::ops::AddAssign for $name {
            /// Sums the counters of instances that split the work between them.
            fn add_assign(&mut self, o: Self) {
                $( self.$field += o.$field; )*
            }
        }

        impl $name {
            /// Every counter, in declaration order.
            pub fn list(&self) -> impl Iterator<Item = $crate::counters::Counter> {
                [$(
                    $crate::counters::Counter {
                        name: $label,
                        value: self.$field,
                        kind: $crate::counters::Kind::$kind,
                    },
                )*]
                .into_iter()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::counters! {
        /// Two counters for the test.
        struct Pair {
            /// Grows.
            seen: "seen" Counter,
            /// A level.
            open: "open_now" Gauge,
        }
    }

    #[test]
    fn sum_and_list_follow_the_declaration() {
        let mut a = Pair { seen: 1, open: 2 };
        a += Pair { seen: 10, open: 20 };
        let listed: Vec<(&str, u64)> = a.list().map(|c| (c.name, c.value)).collect();
        assert_eq!(listed, [("seen", 11), ("open_now", 22)]);
        assert_eq!(a.list().nth(1).unwrap().kind, super::Kind::Gauge);
    }
}
