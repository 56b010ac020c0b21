package integration_test

// TODO(gin): a gin test goes here, once the ginstore module (pgstore for
// gin-contrib/sessions, written as a separate module on its own branch)
// is merged: the same login, read and logout flow as TestChi
// (checkLoginFlow), on a gin engine with ginstore's store and the default
// pgstore Config, over httptest.NewTLSServer. The lead adds it at merge,
// with ginstore's requirement and replace directive in this module's
// go.mod.
