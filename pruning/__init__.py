"""Energy-aware pruning with the simulator in the loop (not built yet: see the
open issue "Energy-aware pruning with the simulator in the loop")."""
