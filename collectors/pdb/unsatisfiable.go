package pdb

import policyv1 "k8s.io/api/policy/v1"

// Unsatisfiable tells whether a PodDisruptionBudget's spec can never allow
// an eviction (see unsatisfiable in eviction.go), for callers outside the
// collector such as preflight.
func Unsatisfiable(pdb *policyv1.PodDisruptionBudget) bool { return unsatisfiable(pdb) }
