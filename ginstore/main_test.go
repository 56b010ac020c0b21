package ginstore_test

import (
	"io"
	"os"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)      // no route table or debug warnings on stdout
	gin.DefaultWriter = io.Discard // nor the tester's gin.Default request log
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
		os.Exit(code)
	}))
}
