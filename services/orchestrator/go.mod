module github.com/brainhq/brain/services/orchestrator

go 1.26.8
