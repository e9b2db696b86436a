// Command hostpath-provisioner is the local cluster's dynamic volume provisioner: the upstream
// external-provisioner controller (sigs.k8s.io/sig-storage-lib-external-provisioner, the library
// the local-path provisioner is built on) with a provisioner that makes one directory per volume
// under --root and returns a hostPath PersistentVolume pinned to --node-name.
//
// It runs as a process beside the control plane (there is no container runtime to run it in), so
// it creates and removes the directories itself instead of through helper Pods. The PV controller
// (kube-controller-manager's persistentvolume-binder-controller) binds the claim; the reclaim
// policy is the StorageClass's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

type hostPathProvisioner struct {
	root     string
	nodeName string
}

// Provision makes <root>/<pv name> (world-writable: the Pods mounting it run as any non-root UID)
// and returns a PV for it. The directory name is the PV's, which the controller derives from the
// claim's UID, so a retried Provision reuses the same directory.
func (p *hostPathProvisioner) Provision(_ context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if o.PVC.Spec.Selector != nil {
		return nil, controller.ProvisioningFinished, errors.New("claim selectors are not supported")
	}
	node := p.nodeName
	if o.SelectedNodeName != "" {
		node = o.SelectedNodeName
	}
	dir := filepath.Join(p.root, o.PVName)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningInBackground, fmt.Errorf("make %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningInBackground, fmt.Errorf("chmod %s: %w", dir, err)
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	directory := v1.HostPathDirectory
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			VolumeMode:                    o.PVC.Spec.VolumeMode,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource:        v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &directory}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	return pv, controller.ProvisioningFinished, nil
}

// Delete removes the volume's directory; only directories directly under --root are touched.
func (p *hostPathProvisioner) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil {
		return &controller.IgnoredError{Reason: "not a hostPath volume"}
	}
	dir := filepath.Clean(pv.Spec.HostPath.Path)
	if filepath.Dir(dir) != filepath.Clean(p.root) || strings.HasPrefix(filepath.Base(dir), ".") {
		return &controller.IgnoredError{Reason: fmt.Sprintf("%s is not one of this provisioner's directories", dir)}
	}
	return os.RemoveAll(dir)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	name := flag.String("provisioner-name", "agentenv.io/local-path", "the StorageClass provisioner this serves")
	root := flag.String("root", "", "directory the volumes are made in")
	node := flag.String("node-name", "agentenv-local", "the node every volume is pinned to (unless the scheduler selected one)")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "hostpath-provisioner: --kubeconfig and --root are required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*root, 0o755); err != nil {
		klog.Fatalf("make %s: %v", *root, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pc := controller.NewProvisionController(ctx, client, *name, &hostPathProvisioner{root: *root, nodeName: *node},
		controller.LeaderElection(false),
		controller.Threadiness(2),
	)
	klog.Infof("serving StorageClass provisioner %s, volumes under %s", *name, *root)
	pc.Run(ctx)
}
