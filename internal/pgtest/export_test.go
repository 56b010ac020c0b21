package pgtest

// BouncerFailed is bouncerFailed.
var BouncerFailed = bouncerFailed
