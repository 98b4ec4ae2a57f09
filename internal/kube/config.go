package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig returns the client configuration: the kubeconfig at path when
// given, else the in-cluster configuration when running in a pod, else the
// default kubeconfig loading rules (KUBECONFIG, ~/.kube/config).
func RESTConfig(path string) (*rest.Config, error) {
	if path == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes configuration: %w", err)
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		where := path
		if where == "" {
			where = "the default kubeconfig (KUBECONFIG, ~/.kube/config)"
		}
		return nil, fmt.Errorf("loading Kubernetes configuration from %s: %w", where, err)
	}
	return cfg, nil
}
